package oidc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// KeySetOptions tune a KeySet. Zero values take the defaults shown.
type KeySetOptions struct {
	// Client fetches the JWK Set; default: a client with HTTPTimeout that
	// follows no redirects. The body is always bounded to MaxResponseBytes.
	Client *http.Client
	// HTTPTimeout bounds each fetch (default 10s).
	HTTPTimeout time.Duration
	// RefreshInterval is how often the set is fetched again (default 15m).
	RefreshInterval time.Duration
	// UnknownKIDEvery rate-limits the refresh a token with an unknown kid
	// triggers (default one per minute).
	UnknownKIDEvery time.Duration
	// RateLimitWaitMax is how long a lookup waits for that limiter; it also
	// bounds the refresh it triggers (default 2s).
	RateLimitWaitMax time.Duration
	// Logger gets refresh failures and skipped keys (default slog.Default()).
	Logger *slog.Logger
	// Name identifies the key set in logs (e.g. the issuer).
	Name string
}

// KeySet is a remote JWK Set (keyfunc v3 over jwkset), fetched at creation,
// refreshed in the background and on unknown key ids (rate-limited).
//
// Unlike plain jwkset, one malformed, symmetric, private or encryption key
// in the set is skipped (and logged) instead of failing the whole refresh,
// and a set with no usable key counts as a failed fetch, so the last good
// keys stay in use.
type KeySet struct {
	kf     keyfunc.Keyfunc
	cancel context.CancelFunc
}

// NewKeySet fetches the JWK Set at jwksURL. It fails if the first fetch
// fails or yields no usable key. The background refresh runs until ctx is
// cancelled or Close is called.
func NewKeySet(ctx context.Context, jwksURL string, opts KeySetOptions) (*KeySet, error) {
	if opts.HTTPTimeout <= 0 {
		opts.HTTPTimeout = 10 * time.Second
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = 15 * time.Minute
	}
	if opts.UnknownKIDEvery <= 0 {
		opts.UnknownKIDEvery = time.Minute
	}
	if opts.RateLimitWaitMax <= 0 {
		opts.RateLimitWaitMax = 2 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	client := newHTTPClient(opts.Client, opts.HTTPTimeout)
	next := client.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	client.Transport = &jwksFilter{next: next, log: log, name: opts.Name}

	// jwkset starts its refresh goroutine before the first fetch and does
	// not stop it when that fetch fails: a context of our own ends it.
	ctx, cancel := context.WithCancel(ctx)
	noErrorOnFirst := false
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURL}, keyfunc.Override{
		Client:                    client,
		HTTPTimeout:               opts.HTTPTimeout,
		RefreshInterval:           opts.RefreshInterval,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(opts.UnknownKIDEvery), 1),
		RateLimitWaitMax:          opts.RateLimitWaitMax,
		NoErrorReturnFirstHTTPReq: &noErrorOnFirst,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				log.WarnContext(ctx, "oidc: JWK Set refresh failed; keeping the last good keys",
					"idp", opts.Name, "jwks_uri", u, "error", err)
			}
		},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("load JWK Set: %w", err)
	}
	return &KeySet{kf: kf, cancel: cancel}, nil
}

// KeyfuncCtx returns the jwt.Keyfunc for one verification; ctx bounds an
// unknown-kid refresh and should carry a deadline. A kid that is not in the
// set fails with an error wrapping jwkset.ErrKeyNotFound, also when the
// refresh it triggers was refused by the rate limiter or timed out (jwkset
// then reports only the limiter or context error).
func (k *KeySet) KeyfuncCtx(ctx context.Context) jwt.Keyfunc {
	lookup := k.kf.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		key, err := lookup(t)
		if err != nil && !errors.Is(err, jwkset.ErrKeyNotFound) {
			if kid, ok := t.Header[jwkset.HeaderKID].(string); ok && !k.has(ctx, kid) {
				err = fmt.Errorf("%w %q: %w", jwkset.ErrKeyNotFound, kid, err)
			}
		}
		return key, err
	}
}

// has reports whether kid is in the set, without triggering a refresh.
func (k *KeySet) has(ctx context.Context, kid string) bool {
	keys, err := k.kf.Storage().KeyReadAll(ctx)
	if err != nil {
		return false
	}
	for _, j := range keys {
		if j.Marshal().KID == kid {
			return true
		}
	}
	return false
}

// Len is the number of keys loaded.
func (k *KeySet) Len(ctx context.Context) int {
	keys, err := k.kf.Storage().KeyReadAll(ctx)
	if err != nil {
		return 0
	}
	return len(keys)
}

// Close stops the background refresh.
func (k *KeySet) Close() { k.cancel() }

// jwksFilter bounds the JWK Set body and drops the keys jwkset would choke
// on or that have no place in an issuer's public signing keys, so that one
// bad key does not take the whole set down.
type jwksFilter struct {
	next http.RoundTripper
	log  *slog.Logger
	name string
}

var errNoUsableKeys = errors.New("JWK Set has no usable signing key")

func (f *jwksFilter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := f.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := readLimited(resp.Body)
	drain(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read JWK Set: %w", err)
	}
	body, err = f.filter(req.Context(), body)
	if err != nil {
		return nil, err
	}
	resp.Body = http.NoBody
	if len(body) > 0 {
		resp.Body = readCloser{bytes.NewReader(body)}
	}
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Del("Content-Encoding")
	resp.Uncompressed = true
	return resp, nil
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func (f *jwksFilter) filter(ctx context.Context, body []byte) ([]byte, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode JWK Set: %w", err)
	}
	kept := make([]json.RawMessage, 0, len(set.Keys))
	for i, raw := range set.Keys {
		var m jwkset.JWKMarshal
		reason := ""
		if err := json.Unmarshal(raw, &m); err != nil {
			reason = "not a JWK object"
		} else {
			reason = skipReason(m)
		}
		if reason == "" {
			if _, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{}); err != nil {
				reason = err.Error()
			}
		}
		if reason != "" {
			f.log.WarnContext(ctx, "oidc: skipping a key of the JWK Set",
				"idp", f.name, "index", i, "kid", m.KID, "kty", string(m.KTY), "reason", reason)
			continue
		}
		kept = append(kept, raw)
	}
	if len(kept) == 0 {
		return nil, errNoUsableKeys
	}
	return json.Marshal(struct {
		Keys []json.RawMessage `json:"keys"`
	}{kept})
}

// skipReason returns why a JWK is not a usable public signing key, or "".
func skipReason(m jwkset.JWKMarshal) string {
	switch {
	case m.KTY == jwkset.KtyOct:
		return "symmetric key in a public JWK Set"
	case m.KTY != jwkset.KtyRSA && m.KTY != jwkset.KtyEC && m.KTY != jwkset.KtyOKP:
		return "unsupported key type"
	case m.USE != "" && m.USE != jwkset.UseSig:
		return "not a signing key"
	case m.D != "" || m.P != "" || m.Q != "" || m.DP != "" || m.DQ != "" || m.QI != "" || len(m.OTH) > 0 || m.K != "":
		return "private key material in a public JWK Set"
	}
	return ""
}
