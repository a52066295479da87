package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/standard"
	"github.com/stepup-bridge/stepup-bridge/adapters/standard/standardtest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/memstore"
	"github.com/stepup-bridge/stepup-bridge/config"
)

func TestStatusMapping(t *testing.T) {
	tests := []struct {
		err  error
		code int
	}{
		{bridge.ErrUnknownBrand, http.StatusNotFound},
		{bridge.ErrUnknownPlatform, http.StatusNotFound},
		{bridge.ErrNotFound, http.StatusNotFound},
		{fmt.Errorf("standard webhook: %w: bad", bridge.ErrUnauthenticated), http.StatusUnauthorized},
		{fmt.Errorf("x: %w", bridge.ErrMalformed), http.StatusBadRequest},
		{bridge.ErrTicketInvalid, http.StatusGone},
		{bridge.ErrLoginInvalid, http.StatusBadRequest},
		{fmt.Errorf("%w: bad aud", bridge.ErrLoginRejected), http.StatusForbidden},
		{bridge.ErrClosed, http.StatusConflict},
		{bridge.ErrAlreadySteppedUp, http.StatusConflict},
		{bridge.ErrBoundElsewhere, http.StatusConflict},
		{bridge.ErrTooManyLinks, http.StatusTooManyRequests},
		{bridge.ErrChannelRefused, http.StatusUnprocessableEntity},
		{fmt.Errorf("redis: %w", bridge.ErrUnavailable), http.StatusServiceUnavailable},
		{errors.New("anything unexpected"), http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			code, msg := status(tt.err)
			assert.Equal(t, tt.code, code)
			assert.NotEmpty(t, msg)
			if code == http.StatusServiceUnavailable {
				assert.NotContains(t, msg, tt.err.Error(), "internal detail stays in the logs")
			}
		})
	}
}

// downStore fails every call while down, as an unreachable Redis does.
type downStore struct {
	bridge.Store
	down atomic.Bool
}

var errDown = fmt.Errorf("%w: connection refused", bridge.ErrUnavailable)

func (d *downStore) Observe(ctx context.Context, id string, o bridge.Observation) error {
	if d.down.Load() {
		return errDown
	}
	return d.Store.Observe(ctx, id, o)
}

func (d *downStore) Get(ctx context.Context, k bridge.Key) (bridge.Session, error) {
	if d.down.Load() {
		return bridge.Session{}, errDown
	}
	return d.Store.Get(ctx, k)
}

func (d *downStore) IssueTicket(ctx context.Context, c bridge.IssueTicket) (bridge.Session, error) {
	if d.down.Load() {
		return bridge.Session{}, errDown
	}
	return d.Store.IssueTicket(ctx, c)
}

func (d *downStore) PeekTicket(ctx context.Context, b string, p uint16, h string, now time.Time) (bridge.Session, error) {
	if d.down.Load() {
		return bridge.Session{}, errDown
	}
	return d.Store.PeekTicket(ctx, b, p, h, now)
}

func (d *downStore) BeginLogin(ctx context.Context, c bridge.BeginLogin) (bridge.Session, error) {
	if d.down.Load() {
		return bridge.Session{}, errDown
	}
	return d.Store.BeginLogin(ctx, c)
}

func (d *downStore) Ping(ctx context.Context) error {
	if d.down.Load() {
		return errDown
	}
	return d.Store.Ping(ctx)
}

// stubIdentity is an IdP that is always ready; these tests never reach it.
type stubIdentity struct{}

func (stubIdentity) AuthURL(state, nonce, challenge string) string {
	return "https://idp.example/authorize?state=" + state
}
func (stubIdentity) Redeem(context.Context, string, string, string) (bridge.Identity, error) {
	return bridge.Identity{}, bridge.ErrLoginRejected
}
func (stubIdentity) Ready(context.Context) error { return nil }
func (stubIdentity) Issuer() string              { return "https://idp.example" }

type fixture struct {
	h      http.Handler
	store  *downStore
	secret string
	svc    *bridge.Service
	rec    *recordingPlatform
}

// recordingPlatform keeps the URL of the last webhook it was given.
type recordingPlatform struct {
	mu  sync.Mutex
	url string
}

func (p *recordingPlatform) ParseWebhook(_ context.Context, req bridge.WebhookRequest) ([]bridge.Event, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.url = req.URL()
	return nil, nil
}

func (p *recordingPlatform) Deliver(context.Context, bridge.OutboxEntry) error { return nil }

const apiKey = "acme-key-0123456789-0123456789-0123456789"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	secret := standardtest.NewSecret()
	p, err := standard.New(config.StandardPlatform{WebhookSecrets: []config.Secret{{Value: secret}}}, standard.Options{})
	require.NoError(t, err)
	store := &downStore{Store: memstore.New(memstore.Options{})}
	rec := &recordingPlatform{}
	brand := &bridge.Brand{ID: "acme", Platforms: map[string]bridge.Platform{"standard": p, "rec": rec}, Identity: stubIdentity{}, Policy: bridge.Policy{
		LinkTTL: 10 * time.Minute, TxnTTL: 10 * time.Minute, Binding: bridge.BindingConfirmCode, CodeTTL: 5 * time.Minute, CodeLength: 6, CodeAttempts: 3,
		MaxLinks: 5, AgentCommand: "/verify", LinkMessage: template.Must(template.New("").Parse("{{.URL}}")),
		NotifyMessage: template.Must(template.New("").Parse("{{.Subject}}")),
	}}
	svc, err := bridge.NewService(bridge.Options{Store: store, Brands: []*bridge.Brand{brand}, PublicURL: "https://bridge.example"})
	require.NoError(t, err)
	h, err := New(Options{Service: svc, PublicURL: "https://bridge.example", APIKeys: map[string][]string{"acme": {apiKey}}, MaxBodyBytes: 4096})
	require.NoError(t, err)
	return &fixture{h: h, store: store, secret: secret, svc: svc, rec: rec}
}

// An adapter whose scheme signs the URL gets the one the platform called:
// the bridge's public origin, the path and query as sent.
func TestWebhookURL(t *testing.T) {
	f := newFixture(t)
	w := f.do(t, http.MethodPost, "/webhooks/acme/rec?sig=a%2Fb&x=1", nil, []byte(`{}`))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	assert.Equal(t, "https://bridge.example/webhooks/acme/rec?sig=a%2Fb&x=1", f.rec.url)
}

func (f *fixture) do(t *testing.T, method, path string, hdr http.Header, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "https://bridge.example"+path, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	return w
}

func (f *fixture) webhook(t *testing.T, data any) *httptest.ResponseRecorder {
	t.Helper()
	body := standardtest.Body("conversation.started", time.Now(), data)
	return f.do(t, http.MethodPost, "/webhooks/acme/standard", standardtest.SignedRequest(f.secret, "msg_"+bridge.RandomString(9), time.Now(), body), body)
}

// TestStoreDown: with the store unreachable nothing is acknowledged: the
// platform gets 503 and retries, the browser a "try again" page.
func TestStoreDown(t *testing.T) {
	f := newFixture(t)
	started := standardtest.ConversationStarted{ConversationID: "c1", ConsumerID: "u1", Channel: "web"}
	require.Equal(t, http.StatusOK, f.webhook(t, started).Code)
	auth := http.Header{"Authorization": {"Bearer " + apiKey}}
	w := f.do(t, http.MethodPost, "/api/v1/brands/acme/conversations/c1/login-links", auth, nil)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	var link bridge.Link
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &link))
	ticketPath := strings.TrimPrefix(link.URL, "https://bridge.example")

	f.store.down.Store(true)
	tests := []struct {
		name   string
		do     func() *httptest.ResponseRecorder
		page   bool
		detail string
	}{
		{"webhook", func() *httptest.ResponseRecorder {
			return f.webhook(t, standardtest.ConversationStarted{ConversationID: "c2"})
		}, false, ""},
		{"create link", func() *httptest.ResponseRecorder {
			return f.do(t, http.MethodPost, "/api/v1/brands/acme/conversations/c1/login-links", auth, nil)
		}, false, ""},
		{"status", func() *httptest.ResponseRecorder {
			return f.do(t, http.MethodGet, "/api/v1/brands/acme/conversations/c1", auth, nil)
		}, false, ""},
		{"login page", func() *httptest.ResponseRecorder { return f.do(t, http.MethodGet, ticketPath, nil, nil) }, true, ""},
		{"login start", func() *httptest.ResponseRecorder { return f.do(t, http.MethodPost, ticketPath, nil, nil) }, true, ""},
		{"readyz", func() *httptest.ResponseRecorder { return f.do(t, http.MethodGet, "/readyz", nil, nil) }, false, "store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.do()
			assert.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
			if tt.page {
				assert.Contains(t, w.Body.String(), "Please try again in a moment")
				assert.Contains(t, w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'")
				assert.Empty(t, w.Header().Values("Set-Cookie"))
			}
			if tt.name != "readyz" {
				assert.Equal(t, "5", w.Header().Get("Retry-After"))
			}
		})
	}

	// Back up: the link was not spent by the failed attempts, and the
	// unacknowledged conversation arrives with the platform's retry.
	f.store.down.Store(false)
	assert.Equal(t, http.StatusOK, f.do(t, http.MethodGet, ticketPath, nil, nil).Code)
	_, err := f.store.Get(context.Background(), bridge.Key{Brand: "acme", Conversation: "c2"})
	assert.ErrorIs(t, err, bridge.ErrNotFound)
}

func TestRouter(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, method, path string
		hdr                http.Header
		code               int
	}{
		{"health", http.MethodGet, "/healthz", nil, http.StatusOK},
		{"ready", http.MethodGet, "/readyz", nil, http.StatusOK},
		{"unknown route", http.MethodGet, "/nope", nil, http.StatusNotFound},
		{"webhook by GET", http.MethodGet, "/webhooks/acme/standard", nil, http.StatusMethodNotAllowed},
		{"stylesheet", http.MethodGet, "/assets/style.css", nil, http.StatusOK},
		{"API key as query is not a key", http.MethodGet, "/api/v1/brands/acme/conversations/c1?api_key=" + apiKey, nil, http.StatusUnauthorized},
		{"Basic is not Bearer", http.MethodGet, "/api/v1/brands/acme/conversations/c1", http.Header{"Authorization": {"Basic " + apiKey}}, http.StatusUnauthorized},
		{"key with a trailing byte", http.MethodGet, "/api/v1/brands/acme/conversations/c1", http.Header{"Authorization": {"Bearer " + apiKey + "x"}}, http.StatusUnauthorized},
		{"key prefix", http.MethodGet, "/api/v1/brands/acme/conversations/c1", http.Header{"Authorization": {"Bearer " + apiKey[:len(apiKey)-1]}}, http.StatusUnauthorized},
		{"good key, unknown conversation", http.MethodGet, "/api/v1/brands/acme/conversations/c1", http.Header{"Authorization": {"Bearer " + apiKey}}, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := f.do(t, tt.method, tt.path, tt.hdr, nil)
			assert.Equal(t, tt.code, w.Code, w.Body.String())
			assert.NotEmpty(t, w.Header().Get("X-Request-Id"))
			if w.Code == http.StatusUnauthorized {
				assert.Contains(t, w.Header().Get("WWW-Authenticate"), "Bearer")
			}
			if w.Code >= 400 {
				var body map[string]string
				require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body), "errors are JSON: %s", w.Body)
				assert.NotEmpty(t, body["error"])
			}
		})
	}

	t.Run("request id", func(t *testing.T) {
		w := f.do(t, http.MethodGet, "/healthz", http.Header{"X-Request-Id": {"abc-123"}}, nil)
		assert.Equal(t, "abc-123", w.Header().Get("X-Request-Id"))
		w = f.do(t, http.MethodGet, "/healthz", http.Header{"X-Request-Id": {"bad id\r\nwith <html>"}}, nil)
		assert.NotContains(t, w.Header().Get("X-Request-Id"), " ")
		assert.NotEmpty(t, w.Header().Get("X-Request-Id"))
	})

	t.Run("a panicking handler is a 500, not a crash", func(t *testing.T) {
		e := f.h.(*gin.Engine)
		e.GET("/test-panic", func(*gin.Context) { panic("boom") })
		w := f.do(t, http.MethodGet, "/test-panic", nil, nil)
		assert.Equal(t, http.StatusInternalServerError, w.Code)
		assert.JSONEq(t, `{"error":"internal error"}`, w.Body.String())
	})

	t.Run("metrics count routes, not raw paths", func(t *testing.T) {
		f.do(t, http.MethodGet, "/login/acme/AAAAAAAAAAAAAAAAAAAAAAAA", nil, nil)
		w := f.do(t, http.MethodGet, "/metrics", nil, nil)
		require.Equal(t, http.StatusOK, w.Code)
		body, _ := io.ReadAll(w.Body)
		assert.Contains(t, string(body), `stepup_http_requests_total{code="410",route="/login/:brand/:ticket"}`)
		assert.NotContains(t, string(body), "AAAAAAAAAAAAAAAAAAAAAAAA")
	})
}

// TestLoginStartOrigin: the start page's own form post passes whatever a
// browser sends for it; a cross-site one never does.
func TestLoginStartOrigin(t *testing.T) {
	f := newFixture(t)
	auth := http.Header{"Authorization": {"Bearer " + apiKey}}
	tests := []struct {
		name string
		hdr  http.Header
		code int
	}{
		{"browser under no-referrer: Origin null, same-origin", http.Header{"Origin": {"null"}, "Sec-Fetch-Site": {"same-origin"}}, http.StatusSeeOther},
		{"browser with its Origin", http.Header{"Origin": {"https://bridge.example"}, "Sec-Fetch-Site": {"same-origin"}}, http.StatusSeeOther},
		{"older browser: Origin only", http.Header{"Origin": {"https://bridge.example"}}, http.StatusSeeOther},
		{"Origin with the default port and upper case", http.Header{"Origin": {"https://Bridge.Example:443"}}, http.StatusSeeOther},
		{"not a browser: neither header", nil, http.StatusSeeOther},
		{"cross-site, Origin null", http.Header{"Origin": {"null"}, "Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"cross-site with a forged-looking Origin", http.Header{"Origin": {"https://bridge.example"}, "Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"same-site sibling", http.Header{"Origin": {"https://evil.bridge.example"}, "Sec-Fetch-Site": {"same-site"}}, http.StatusForbidden},
		{"older browser, foreign Origin", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"older browser, Origin null", http.Header{"Origin": {"null"}}, http.StatusForbidden},
		{"other scheme", http.Header{"Origin": {"http://bridge.example"}}, http.StatusForbidden},
		{"other port", http.Header{"Origin": {"https://bridge.example:8443"}}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conv := "c-" + bridge.RandomString(6) // a conversation each: links are limited
			require.Equal(t, http.StatusOK, f.webhook(t, standardtest.ConversationStarted{ConversationID: conv}).Code)
			w := f.do(t, http.MethodPost, "/api/v1/brands/acme/conversations/"+conv+"/login-links", auth, nil)
			require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
			var link bridge.Link
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &link))
			path := strings.TrimPrefix(link.URL, "https://bridge.example")

			w = f.do(t, http.MethodPost, path, tt.hdr, nil)
			assert.Equal(t, tt.code, w.Code, w.Body.String())
			if tt.code == http.StatusForbidden {
				assert.Empty(t, w.Header().Values("Set-Cookie"))
				// Refused before the ticket is touched: the link still works.
				assert.Equal(t, http.StatusOK, f.do(t, http.MethodGet, path, nil, nil).Code)
			} else {
				assert.Equal(t, "https://idp.example", strings.SplitN(w.Header().Get("Location"), "/authorize", 2)[0])
			}
		})
	}
}

func TestCanonicalOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://bridge.example":       "https://bridge.example",
		"https://Bridge.Example:443":   "https://bridge.example",
		"http://127.0.0.1:80":          "http://127.0.0.1",
		"http://127.0.0.1:8080":        "http://127.0.0.1:8080",
		"https://[::1]:8443":           "https://[::1]:8443",
		"https://[::1]":                "https://[::1]",
		"https://bridge.example/path/": "https://bridge.example",
		"null":                         "",
		"":                             "",
	} {
		u, err := url.Parse(in)
		require.NoError(t, err)
		assert.Equal(t, want, canonicalOrigin(u), in)
	}
}
