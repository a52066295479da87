package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/adapters/standard/standardtest"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore/redistest"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// TestRedisOutage stops and restarts a real redis-server under a built
// bridge: while it is down, webhooks answer 503 (the platform retries,
// nothing is acknowledged), /readyz is false, the API answers 503 and the
// login page says "try again"; when it is back, everything works again
// with no restart of the bridge, and the retried webhook is applied once.
func TestRedisOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own redis-server (slow tier)")
	}
	srv := redistest.StartServer(t)
	idp := oidctest.NewTest(t, oidctest.Config{})
	whSecret := standardtest.NewSecret()
	const apiKey = "acme-api-key-0123456789abcdefghijklmnop"
	env := map[string]string{"IDP_SECRET": idp.ClientSecret(), "WH": whSecret, "API": apiKey}
	yaml := fmt.Sprintf(`server:
  public_url: https://bridge.example.test
store:
  driver: redis
  redis:
    addrs: [%q]
    dial_timeout: 200ms
    read_timeout: 500ms
    write_timeout: 500ms
brands:
  - id: acme
    api_keys: ["${API}"]
    platforms:
      - type: standard
        webhook_secrets: ["${WH}"]
    identity:
      issuer: %s
      client_id: %s
      client_secret: ${IDP_SECRET}
`, srv.Addr, idp.Issuer(), idp.ClientID())
	cfg, err := config.Parse([]byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err)
	app, err := build(context.Background(), cfg, slog.New(slog.DiscardHandler), buildOptions{HTTPClient: idp.Client()})
	require.NoError(t, err)
	t.Cleanup(app.Close)

	do := func(method, path string, hdr http.Header, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		for k, v := range hdr {
			req.Header[k] = v
		}
		w := httptest.NewRecorder()
		app.Handler.ServeHTTP(w, req)
		return w
	}
	webhook := func(id, conv string) *httptest.ResponseRecorder {
		body := standardtest.Body("conversation.started", time.Now(), standardtest.ConversationStarted{ConversationID: conv, ConsumerID: "anon-1", Channel: "web"})
		return do(http.MethodPost, "/webhooks/acme/standard", standardtest.SignedRequest(whSecret, id, time.Now(), body), body)
	}
	auth := http.Header{"Authorization": {"Bearer " + apiKey}}

	require.Equal(t, http.StatusOK, webhook("wh-1", "c1").Code)
	require.Equal(t, http.StatusOK, do(http.MethodGet, "/readyz", nil, nil).Code)
	w := do(http.MethodPost, "/api/v1/brands/acme/conversations/c1/login-links", auth, nil)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	link := w.Body.String()
	loginPath := link[strings.Index(link, "/login/"):strings.Index(link, `","expires_at"`)]

	srv.Stop()
	w = webhook("wh-2", "c2")
	assert.Equal(t, http.StatusServiceUnavailable, w.Code, "never 200 and drop")
	assert.Equal(t, "5", w.Header().Get("Retry-After"))
	w = do(http.MethodGet, "/readyz", nil, nil)
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Contains(t, w.Body.String(), "store not ready")
	assert.NotContains(t, w.Body.String(), srv.Addr, "no address in the public answer")
	assert.Equal(t, http.StatusServiceUnavailable, do(http.MethodGet, "/api/v1/brands/acme/conversations/c1", auth, nil).Code)
	w = do(http.MethodGet, loginPath, nil, nil)
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Contains(t, w.Body.String(), "Please try again in a moment")

	srv.Restart()
	require.Eventually(t, func() bool { return do(http.MethodGet, "/readyz", nil, nil).Code == http.StatusOK }, 10*time.Second, 50*time.Millisecond)
	w = webhook("wh-2", "c2") // the platform's retry
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Contains(t, w.Body.String(), `"events":1`, "the retried event was never acknowledged, so it is applied now")
	assert.Equal(t, http.StatusOK, do(http.MethodGet, "/api/v1/brands/acme/conversations/c2", auth, nil).Code)
}
