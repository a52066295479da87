package oidc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// RemoteKeys is a JWK Set that may not be loaded yet. Where NewKeySet fails
// when the first fetch does, NewRemoteKeys returns at once: it logs one
// clear warning, reports not ready, and keeps trying in the background
// (exponential backoff) until the set loads or the context ends. Lookups
// before that fail with ErrNotReady instead of "key not found", so callers
// can answer "retry later" rather than "forged".
type RemoteKeys struct {
	url  string
	opts KeySetOptions
	log  *slog.Logger

	retryMin, retryMax time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	keys    atomic.Pointer[KeySet]
	lastErr atomic.Pointer[error]
}

// NewRemoteKeys starts loading the JWK Set at jwksURL (one synchronous try,
// bounded by opts.HTTPTimeout). ctx is its lifetime; Close stops it too.
func NewRemoteKeys(ctx context.Context, jwksURL string, opts KeySetOptions, retryMin, retryMax time.Duration) (*RemoteKeys, error) {
	if _, err := checkURL(jwksURL, true); err != nil {
		return nil, fmt.Errorf("jwks_uri %q: %w", jwksURL, err)
	}
	if retryMin <= 0 {
		retryMin = DefaultRetryMin
	}
	if retryMax < retryMin {
		retryMax = max(DefaultRetryMax, retryMin)
	}
	r := &RemoteKeys{url: jwksURL, opts: opts, log: opts.Logger, retryMin: retryMin, retryMax: retryMax, done: make(chan struct{})}
	if r.log == nil {
		r.log = slog.Default()
		r.opts.Logger = r.log
	}
	r.ctx, r.cancel = context.WithCancel(ctx)
	if err := r.load(); err != nil {
		r.lastErr.Store(&err)
		r.log.WarnContext(ctx, "oidc: JWK Set not loaded; tokens signed by this issuer are refused until it is (retrying in the background)",
			"idp", opts.Name, "jwks_uri", jwksURL, "error", err)
		go r.retry()
		return r, nil
	}
	close(r.done)
	return r, nil
}

func (r *RemoteKeys) load() error {
	ks, err := NewKeySet(r.ctx, r.url, r.opts)
	if err != nil {
		return err
	}
	r.keys.Store(ks)
	r.lastErr.Store(nil)
	return nil
}

func (r *RemoteKeys) retry() {
	defer close(r.done)
	wait := r.retryMin
	timer := time.NewTimer(jitter(wait))
	defer timer.Stop()
	for attempt := 2; ; attempt++ {
		select {
		case <-r.ctx.Done():
			return
		case <-timer.C:
		}
		err := r.load()
		if err == nil {
			r.log.InfoContext(r.ctx, "oidc: JWK Set loaded", "idp", r.opts.Name, "attempts", attempt)
			return
		}
		if r.ctx.Err() != nil {
			return
		}
		r.lastErr.Store(&err)
		r.log.DebugContext(r.ctx, "oidc: JWK Set still not loaded", "idp", r.opts.Name, "attempt", attempt, "error", err)
		wait = min(2*wait, r.retryMax)
		timer.Reset(jitter(wait))
	}
}

// Ready returns nil once the set holds at least one key, else an error
// wrapping ErrNotReady with the last failure.
func (r *RemoteKeys) Ready(ctx context.Context) error {
	ks := r.keys.Load()
	if ks == nil {
		cause := errors.New("loading")
		if e := r.lastErr.Load(); e != nil {
			cause = *e
		}
		return fmt.Errorf("%w: JWK Set %s: %w", ErrNotReady, r.opts.Name, cause)
	}
	if ks.Len(ctx) == 0 {
		return fmt.Errorf("%w: JWK Set %s: no signing keys loaded", ErrNotReady, r.opts.Name)
	}
	return nil
}

// KeyfuncCtx implements Keys; before the set is loaded every lookup fails
// with ErrNotReady.
func (r *RemoteKeys) KeyfuncCtx(ctx context.Context) jwt.Keyfunc {
	ks := r.keys.Load()
	if ks == nil {
		return func(*jwt.Token) (any, error) { return nil, ErrNotReady }
	}
	return ks.KeyfuncCtx(ctx)
}

// Close stops the background work and waits for the retry loop to end.
func (r *RemoteKeys) Close() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
		if ks := r.keys.Load(); ks != nil {
			ks.Close()
		}
	})
}
