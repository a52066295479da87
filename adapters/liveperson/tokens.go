package liveperson

import (
	"context"
	"sync"
	"time"
)

// tokenCache keeps one API token (Sentinel AppJWT, CCS token): replaced
// when due (refreshAt), dropped after the API refused it; concurrent
// callers wait for one fetch.
type tokenCache struct {
	fetchMu sync.Mutex // one fetch at a time
	mu      sync.Mutex
	tok     *appToken
}

func (c *tokenCache) get(ctx context.Context, now func() time.Time, fetch func(context.Context) (*appToken, error)) (*appToken, error) {
	fresh := func() *appToken {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.tok != nil && now().Before(c.tok.refreshAt) {
			return c.tok
		}
		return nil
	}
	if t := fresh(); t != nil {
		return t, nil
	}
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	if t := fresh(); t != nil {
		return t, nil
	}
	t, err := fetch(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.tok = t
	c.mu.Unlock()
	return t, nil
}

// drop forgets t (unless already replaced).
func (c *tokenCache) drop(t *appToken) {
	c.mu.Lock()
	if c.tok == t {
		c.tok = nil
	}
	c.mu.Unlock()
}
