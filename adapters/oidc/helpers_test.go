package oidc_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc"
	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/telemetry/telemetrytest"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// redirectURL is the bridge's callback; nothing listens there: the tests
// read the IdP's redirect instead of following it.
const redirectURL = "http://127.0.0.1:9/callback/acme"

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if s := leaked(3 * time.Second); s != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked after all tests:\n%s\n", s)
			code = 1
		}
	}
	os.Exit(code)
}

// leaked waits up to d for the package's background goroutines (retry
// loop, jwkset refresh) to end and returns their stacks if they do not.
func leaked(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		var bad []string
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "jwkset.NewStorageFromHTTP") || strings.Contains(g, "oidc.(*Provider).retry") || strings.Contains(g, "oidc.(*RemoteKeys).retry") {
				bad = append(bad, g)
			}
		}
		if len(bad) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(bad, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fakeClock is a settable clock shared by the IdP and the relying party.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Now().Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output from many goroutines.
type syncBuffer = telemetrytest.LogBuffer

// env is one IdP and one relying-party provider in front of it.
type env struct {
	idp   *oidctest.Provider
	p     *oidc.Provider
	clock *fakeClock
	logs  *syncBuffer
	ctx   context.Context
}

type setup struct {
	idp      oidctest.Config
	identity func(*config.Identity)
	before   func(*oidctest.Provider) // runs before oidc.New
	opts     oidc.Options
}

func newEnv(t *testing.T, mods ...func(*setup)) *env {
	t.Helper()
	clock := newClock()
	s := &setup{
		idp:  oidctest.Config{RedirectURIs: []string{redirectURL}, Now: clock.Now},
		opts: oidc.Options{RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond},
	}
	for _, m := range mods {
		m(s)
	}
	idp := oidctest.NewTest(t, s.idp)
	if s.before != nil {
		s.before(idp)
	}
	cfg := idp.Identity()
	cfg.Claims.Extra = map[string]string{"customer_id": "https://acme.example/customer_id"}
	if s.identity != nil {
		s.identity(&cfg)
	}
	logs := &syncBuffer{}
	opts := s.opts
	opts.Clock = clock
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.HTTPClient == nil && s.idp.TLS {
		opts.HTTPClient = idp.Client()
	}
	ctx := t.Context()
	p, err := oidc.New(ctx, cfg, redirectURL, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		p.Close()
		if s := leaked(3 * time.Second); s != "" {
			t.Errorf("goroutines leaked after Close:\n%s", s)
		}
		// Nothing secret ever reaches the log.
		require.NotContains(t, logs.String(), idp.ClientSecret())
	})
	return &env{idp: idp, p: p, clock: clock, logs: logs, ctx: ctx}
}

// login runs /authorize as a browser and returns the code, the PKCE
// verifier and the nonce of the transaction.
func (e *env) login(t *testing.T) (code, verifier, nonce string) {
	t.Helper()
	verifier = oidc.NewVerifier()
	nonce = bridge.RandomString(16)
	state := bridge.RandomString(16)
	authURL := e.p.AuthURL(state, nonce, oidc.Challenge(verifier))
	require.NotEmpty(t, authURL, "provider not ready: %v", e.p.Ready(e.ctx))
	loc, err := e.idp.Login(authURL)
	require.NoError(t, err)
	q := loc.Query()
	require.Equal(t, state, q.Get("state"))
	require.NoError(t, e.p.CheckCallbackIssuer(q.Get("iss")))
	require.NotEmpty(t, q.Get("code"), "authorize error: %s", q.Get("error"))
	return q.Get("code"), verifier, nonce
}

// redeem runs a whole login.
func (e *env) redeem(t *testing.T) (bridge.Identity, error) {
	t.Helper()
	code, verifier, nonce := e.login(t)
	return e.p.Redeem(e.ctx, code, verifier, nonce)
}

// requireRejected asserts a rejected login with the given reason.
func requireRejected(t *testing.T, err error, reason string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, bridge.ErrLoginRejected)
	require.Equal(t, reason, oidc.Reason(err), "error: %v", err)
}

// waitReady waits for the provider to become ready.
func (e *env) waitReady(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { return e.p.Ready(e.ctx) == nil }, 5*time.Second, 10*time.Millisecond,
		"never ready: %v", e.p.Ready(e.ctx))
}
