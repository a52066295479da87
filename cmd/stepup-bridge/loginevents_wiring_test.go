package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// TestLoginEventsWired checks that build() attaches a brand's login-event
// sources: a signed Keycloak event through the real router is recorded, a
// forged one is refused and records nothing.
func TestLoginEventsWired(t *testing.T) {
	idp := oidctest.NewTest(t, oidctest.Config{})
	const secret = "kc-events-secret-0123456789abcdef0123"
	env := map[string]string{"IDP_SECRET": idp.ClientSecret(), "KC_SECRET": secret, "WH": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	yaml := fmt.Sprintf(`server:
  public_url: https://bridge.example.test
brands:
  - id: acme
    platforms:
      - type: standard
        webhook_secrets: ["${WH}"]
    identity:
      issuer: %s
      client_id: %s
      client_secret: ${IDP_SECRET}
      login_events:
        - type: keycloak
          secrets: ["${KC_SECRET}"]
          realm: acme
`, idp.Issuer(), idp.ClientID())
	cfg, err := config.Parse([]byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err)
	app, err := build(context.Background(), cfg, slog.New(slog.DiscardHandler), buildOptions{HTTPClient: idp.Client()})
	require.NoError(t, err)
	t.Cleanup(app.Close)

	body, err := json.Marshal(map[string]any{
		"uid": "ev-1", "type": "access.LOGIN", "time": time.Now().UnixMilli(), "realmId": "acme",
		"authDetails": map[string]any{"realmId": "acme", "clientId": "bridge", "userId": "kc-user-1"},
	})
	require.NoError(t, err)
	post := func(sig string) int {
		req := httptest.NewRequest(http.MethodPost, "/idp/acme/keycloak", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Keycloak-Signature", sig)
		rec := httptest.NewRecorder()
		app.Handler.ServeHTTP(rec, req)
		return rec.Code
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)

	assert.Equal(t, http.StatusUnauthorized, post(hex.EncodeToString(make([]byte, 32))))
	_, err = app.Store.LatestLogin(context.Background(), "acme", "kc-user-1", time.Now())
	require.ErrorIs(t, err, bridge.ErrNotFound, "a forged event records nothing")

	assert.Equal(t, http.StatusNoContent, post(hex.EncodeToString(mac.Sum(nil))))
	rec, err := app.Store.LatestLogin(context.Background(), "acme", "kc-user-1", time.Now())
	require.NoError(t, err)
	assert.True(t, rec.Verified)
	assert.Equal(t, "keycloak", rec.Source)
}
