package idpevents_test

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
)

func TestOktaVerificationChallenge(t *testing.T) {
	h := newHarness(t)
	const challenge = "Ypb-b0dU_h9Cy6gQ7aSl1C_t3CJ7DDnmx7wXd7xq"
	for _, tc := range []struct {
		name   string
		header http.Header
		status int
	}{
		{"current secret", http.Header{"Authorization": {oktaSecret}, "X-Okta-Verification-Challenge": {challenge}}, http.StatusOK},
		{"previous secret during rotation", http.Header{"Authorization": {oktaSecretOld}, "X-Okta-Verification-Challenge": {challenge}}, http.StatusOK},
		{"no Authorization", http.Header{"X-Okta-Verification-Challenge": {challenge}}, http.StatusUnauthorized},
		{"wrong Authorization", http.Header{"Authorization": {oktaSecret + "x"}, "X-Okta-Verification-Challenge": {challenge}}, http.StatusUnauthorized},
		{"no challenge", http.Header{"Authorization": {oktaSecret}}, http.StatusBadRequest},
		{"oversized challenge", http.Header{"Authorization": {oktaSecret}, "X-Okta-Verification-Challenge": {strings.Repeat("a", 257)}}, http.StatusBadRequest},
		{"challenge with a quote", http.Header{"Authorization": {oktaSecret}, "X-Okta-Verification-Challenge": {`a"b`}}, http.StatusOK},
		{"challenge with a control character", http.Header{"Authorization": {oktaSecret}, "X-Okta-Verification-Challenge": {"a\tb"}}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := h.get(t, "okta", tc.header)
			require.Equal(t, tc.status, w.Code, w.Body.String())
			assert.Equal(t, "application/json; charset=utf-8", w.Header().Get("Content-Type"))
			if tc.status == http.StatusOK {
				var got map[string]string
				require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
				assert.Equal(t, map[string]string{"verification": tc.header.Get("X-Okta-Verification-Challenge")}, got)
				assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
			}
		})
	}
	// Only sources with a challenge answer GET (others 405); unknown providers are 404.
	assert.Equal(t, http.StatusMethodNotAllowed, h.get(t, "keycloak", http.Header{"Authorization": {oktaSecret}}).Code)
	assert.Equal(t, http.StatusNotFound, h.get(t, "nope", nil).Code)
	assert.Equal(t, http.StatusMethodNotAllowed, func() int {
		req, _ := http.NewRequest(http.MethodPut, "/idp/acme/okta", nil)
		w := newRecorder()
		h.router.ServeHTTP(w, req)
		return w.Code
	}())
}

func TestOktaEventHook(t *testing.T) {
	h := newHarness(t)
	now := h.clock.Now()
	body := oktaBody(
		oktaEvent{UUID: "u-1", Type: "user.session.start", Actor: "00u-alice", Result: "SUCCESS", Published: now.Add(-time.Minute)},
		oktaEvent{UUID: "u-1", Type: "user.session.start", Actor: "00u-alice", Result: "SUCCESS", Published: now.Add(-time.Minute)}, // duplicate in the batch
		oktaEvent{UUID: "u-2", Type: "user.authentication.sso", Actor: "00u-bob", Result: "SUCCESS", App: oktaApp, Published: now},
		oktaEvent{UUID: "u-3", Type: "user.authentication.sso", Actor: "00u-carol", Result: "FAILURE", App: oktaApp, Published: now},     // fires on failures too
		oktaEvent{UUID: "u-4", Type: "user.authentication.sso", Actor: "00u-dave", Result: "SUCCESS", App: "0oa-other", Published: now},  // another app
		oktaEvent{UUID: "u-5", Type: "user.account.lock", Actor: "00u-erin", Result: "SUCCESS", Published: now},                          // not a login
		oktaEvent{UUID: "u-6", Type: "user.session.start", Actor: "00u-frank", Result: "SUCCESS", Published: now.Add(-11 * time.Minute)}, // stale
	)
	w := h.post(t, "okta", body, oktaHeader(oktaSecret))
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Empty(t, w.Body.String(), "Okta wants an empty body")

	alice := h.latest(t, "00u-alice")
	require.NotNil(t, alice)
	assert.False(t, alice.Verified, "an Okta event is a hint, never proof")
	assert.Equal(t, "okta", alice.Source)
	assert.Equal(t, "Acme login", alice.Identity.Provider)
	assert.Equal(t, h.idp.Issuer(), alice.Identity.Issuer)
	assert.Equal(t, "Alice Example", alice.Identity.Name)
	assert.Empty(t, alice.Identity.Email, "alternateId is not a verified email")
	assert.Equal(t, now.Add(-time.Minute).UTC(), alice.At)
	require.NotNil(t, h.latest(t, "00u-bob"))
	for _, s := range []string{"00u-carol", "00u-dave", "00u-erin", "00u-frank"} {
		assert.Nil(t, h.latest(t, s), s)
	}

	// The previous secret still works while Okta is being switched over.
	w = h.post(t, "okta", oktaBody(oktaEvent{UUID: "u-7", Type: "user.session.start", Actor: "00u-gina", Result: "SUCCESS", Published: now}), oktaHeader(oktaSecretOld))
	require.Equal(t, http.StatusNoContent, w.Code)
	require.NotNil(t, h.latest(t, "00u-gina"))

	// Nothing personal or secret in the logs.
	logs := h.logs.String()
	assert.NotContains(t, logs, "alice@example.test")
	assert.NotContains(t, logs, "Alice Example")
}

// TestOktaDocumentSamples replays the two verbatim samples of the Okta doc
// at the time they were published.
func TestOktaDocumentSamples(t *testing.T) {
	for _, tc := range []struct {
		file, actor, published string
	}{
		{"okta-event-hook-user.session.start.json", "00uz9fj5aT69fHVro1d6", "2023-03-26T21:05:32.159Z"},
		{"okta-event-hook-user.session.start.old-doc-54ad107.json", "00u1qw6mqitPHM8AJ0g7", "2018-03-28T22:23:07.777Z"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			h := newHarness(t)
			body, err := os.ReadFile("testdata/" + tc.file)
			require.NoError(t, err)
			// Delivered today, the sample is stale: accepted, recorded nothing.
			require.Equal(t, http.StatusNoContent, h.post(t, "okta", body, oktaHeader(oktaSecret)).Code)
			require.Nil(t, h.latest(t, tc.actor))

			pub, err := time.Parse(time.RFC3339, tc.published)
			require.NoError(t, err)
			h.clock.Advance(pub.Add(2 * time.Minute).Sub(h.clock.Now()))
			require.Equal(t, http.StatusNoContent, h.post(t, "okta", body, oktaHeader(oktaSecret)).Code)
			rec := h.latest(t, tc.actor)
			require.NotNil(t, rec)
			assert.False(t, rec.Verified)
			assert.Equal(t, pub.UTC(), rec.At)
		})
	}
}

func TestKeycloakEvents(t *testing.T) {
	h := newHarness(t)
	now := h.clock.Now()
	send := func(secret string, body []byte) int {
		return h.post(t, "keycloak", body, keycloakHeader(secret, body)).Code
	}
	ok := keycloakBody("e-1", "access.LOGIN", "kc-user-1", "bridge", now.Add(-time.Second))
	require.Equal(t, http.StatusNoContent, send(kcSecret, ok))
	rec := h.latest(t, "kc-user-1")
	require.NotNil(t, rec)
	assert.True(t, rec.Verified, "the HMAC proves the realm's extension sent it")
	assert.Equal(t, "keycloak", rec.Source)
	assert.Equal(t, now.Add(-time.Second).UTC().Truncate(time.Millisecond), rec.At)

	// Rotation: the previous secret verifies too.
	require.Equal(t, http.StatusNoContent, send(kcSecretOld, keycloakBody("e-2", "access.LOGIN", "kc-user-2", "bridge", now)))
	require.NotNil(t, h.latest(t, "kc-user-2"))

	// Not logins, or not ours: accepted (so the extension does not retry), not recorded.
	for _, body := range [][]byte{
		keycloakBody("e-3", "access.LOGIN_ERROR", "kc-user-3", "bridge", now),
		keycloakBody("e-4", "access.LOGOUT", "kc-user-4", "bridge", now),
		keycloakBody("e-5", "access.LOGIN", "kc-user-5", "another-client", now),
		keycloakBody("e-6", "access.LOGIN", "kc-user-6", "bridge", now.Add(-11*time.Minute)),
		keycloakBody("e-7", "admin.USER-UPDATE", "kc-user-7", "bridge", now),
	} {
		require.Equal(t, http.StatusNoContent, send(kcSecret, body))
	}
	for _, s := range []string{"kc-user-3", "kc-user-4", "kc-user-5", "kc-user-6", "kc-user-7"} {
		assert.Nil(t, h.latest(t, s), s)
	}
	// An event with an error is not a login.
	var m map[string]any
	require.NoError(t, json.Unmarshal(keycloakBody("e-8", "access.LOGIN", "kc-user-8", "bridge", now), &m))
	m["error"] = "invalid_user_credentials"
	withErr, _ := json.Marshal(m)
	require.Equal(t, http.StatusNoContent, send(kcSecret, withErr))
	assert.Nil(t, h.latest(t, "kc-user-8"))

	// An Okta hint never replaces the verified Keycloak login of the same subject.
	require.Equal(t, http.StatusNoContent, h.post(t, "okta",
		oktaBody(oktaEvent{UUID: "u-9", Type: "user.session.start", Actor: "kc-user-1", Result: "SUCCESS", Published: now}), oktaHeader(oktaSecret)).Code)
	rec = h.latest(t, "kc-user-1")
	require.NotNil(t, rec)
	assert.True(t, rec.Verified)
	assert.Equal(t, "keycloak", rec.Source)
}

func TestJWTEvents(t *testing.T) {
	h := newHarness(t)
	raw := h.partnerToken(t, "partner-7", nil)
	// As JSON ...
	require.Equal(t, http.StatusNoContent, h.post(t, "jwt", tokenBody(raw), http.Header{"Content-Type": {"application/json"}}).Code)
	rec := h.latest(t, "partner-7")
	require.NotNil(t, rec)
	assert.True(t, rec.Verified)
	assert.Equal(t, "jwt", rec.Source)
	assert.Equal(t, "Partner", rec.Identity.Provider)
	assert.Equal(t, h.partner.Issuer(), rec.Identity.Issuer)
	assert.Equal(t, "Pat Partner", rec.Identity.Name)
	assert.Equal(t, h.clock.Now().UTC(), rec.At, "recorded at iat")

	// ... or as the compact token itself; ES256 too.
	require.NoError(t, h.partner.UseAlg("ES256"))
	raw = h.partnerToken(t, "partner-8", nil)
	require.Equal(t, http.StatusNoContent, h.post(t, "jwt", []byte(raw+"\n"), http.Header{"Content-Type": {"application/jwt"}}).Code)
	require.NotNil(t, h.latest(t, "partner-8"))
	assert.NotContains(t, h.logs.String(), strings.Split(raw, ".")[1], "no token in the logs")
}

// TestJWTKeyRotation: the issuer rotates its keys; a token under the new
// kid is accepted at first sight (one JWK Set refresh), and a token under
// the removed kid is refused.
func TestJWTKeyRotation(t *testing.T) {
	h := newHarness(t)
	require.Equal(t, http.StatusNoContent, h.post(t, "jwt", tokenBody(h.partnerToken(t, "partner-1", nil)), nil).Code)
	fetches := h.partner.JWKSFetches()
	oldKID := h.partner.KID("RS256")

	_, err := h.partner.RotateKeys(false)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, h.post(t, "jwt", tokenBody(h.partnerToken(t, "partner-2", nil)), nil).Code)
	require.NotNil(t, h.latest(t, "partner-2"))
	require.Equal(t, fetches+1, h.partner.JWKSFetches(), "the new kid triggered one refresh")

	c := h.partner.Claims(oidctest.User{Subject: "partner-3"}, "")
	c["aud"] = jwtAudience("jwt")
	old, err := h.partner.Sign(c, oldKID)
	require.NoError(t, err)
	w := h.post(t, "jwt", tokenBody(old), nil)
	require.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Contains(t, w.Body.String(), "token: unknown signing key")
	assert.Nil(t, h.latest(t, "partner-3"))
}

func TestAuth0Events(t *testing.T) {
	h := newHarness(t)
	// Tenant keys (RS256 via its JWK Set).
	c := h.tenant.Claims(oidctest.User{Subject: "auth0|123456", Name: "Jane Doe"}, "")
	c["aud"] = jwtAudience("auth0")
	delete(c, "azp")
	raw, err := h.tenant.Sign(c, "")
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, h.post(t, "auth0", tokenBody(raw), nil).Code)
	rec := h.latest(t, "auth0|123456")
	require.NotNil(t, rec)
	assert.True(t, rec.Verified)
	assert.Equal(t, "auth0", rec.Source)

	// The same tenant token is not accepted by the HS256 source ...
	h.rejectedEventKeep(t, "auth0-action", tokenBody(raw), http.StatusUnauthorized, "auth0|123456")

	// ... which takes the Action's HS256 tokens.
	hs := h.hsToken(t, hsSecret, "auth0|654321", nil)
	require.Equal(t, http.StatusNoContent, h.post(t, "auth0-action", tokenBody(hs), nil).Code)
	rec = h.latest(t, "auth0|654321")
	require.NotNil(t, rec)
	assert.True(t, rec.Verified)
	assert.Equal(t, "auth0-action", rec.Source)
	assert.Equal(t, hsIssuer, rec.Identity.Issuer)
	// encodeToken's default lifetime (900 s) is fine: iat bounds the use.
	require.Equal(t, http.StatusNoContent, h.post(t, "auth0-action", tokenBody(h.hsToken(t, hsSecret, "auth0|900", func(c jwt.MapClaims) {
		c["exp"] = h.clock.Now().Add(900 * time.Second).Unix()
	})), nil).Code)
	require.NotNil(t, h.latest(t, "auth0|900"))
	// Rotation: the previous Action secret verifies too.
	require.Equal(t, http.StatusNoContent, h.post(t, "auth0-action", tokenBody(h.hsToken(t, hsSecretOld, "auth0|654322", nil)), nil).Code)
	require.NotNil(t, h.latest(t, "auth0|654322"))

	// And the HS256 token is refused by the JWK Set source.
	w := h.post(t, "auth0", tokenBody(h.hsToken(t, hsSecret, "auth0|777", nil)), nil)
	require.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Nil(t, h.latest(t, "auth0|777"))

	for _, tc := range []struct {
		name   string
		secret string
		mod    func(jwt.MapClaims)
		reason string
	}{
		{"wrong secret", strings.Repeat("x", 40), nil, "invalid signature"},
		{"wrong issuer", hsSecret, func(c jwt.MapClaims) { c["iss"] = "evil.auth0.com" }, "invalid issuer"},
		{"no exp", hsSecret, func(c jwt.MapClaims) { delete(c, "exp") }, "required claim missing"},
		{"expired", hsSecret, func(c jwt.MapClaims) { c["exp"] = h.clock.Now().Add(-time.Minute).Unix() }, "expired"},
		{"old iat, exp far away", hsSecret, func(c jwt.MapClaims) {
			c["iat"], c["exp"] = h.clock.Now().Add(-11*time.Minute).Unix(), h.clock.Now().Add(24*time.Hour).Unix()
		}, "too old"},
		{"no iat", hsSecret, func(c jwt.MapClaims) { delete(c, "iat") }, "iat missing"},
		{"old iat", hsSecret, func(c jwt.MapClaims) { c["iat"] = h.clock.Now().Add(-11 * time.Minute).Unix() }, "too old"},
		{"no sub", hsSecret, func(c jwt.MapClaims) { delete(c, "sub") }, "invalid sub"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := h.post(t, "auth0-action", tokenBody(h.hsToken(t, tc.secret, "auth0|888", tc.mod)), nil)
			require.Equal(t, http.StatusUnauthorized, w.Code)
			assert.Contains(t, w.Body.String(), tc.reason)
			assert.Nil(t, h.latest(t, "auth0|888"))
		})
	}
}

// TestJWKSDownAtStart: the issuer's JWK Set cannot be fetched when the
// bridge starts. The source is not ready (with a clear log line), events are
// answered 503 (the IdP retries; never 401, which would say "forged"), and
// once the keys load everything works.
func TestJWKSDownAtStart(t *testing.T) {
	h := newHarness(t, func(c *harnessCfg) {
		c.beforeNew = func(h *harness) { h.partner.SetJWKSDown(true) }
	})
	src := h.sources["jwt"].(bridge.LoginEventReadiness)
	err := src.Ready(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "503")
	require.Error(t, h.svc.LoginEventsReady(t.Context()))
	assert.Contains(t, h.logs.String(), "JWK Set not loaded; tokens signed by this issuer are refused until it is")

	w := h.post(t, "jwt", tokenBody(h.partnerToken(t, "partner-9", nil)), nil)
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, "5", w.Header().Get("Retry-After"))
	assert.Nil(t, h.latest(t, "partner-9"))

	h.partner.SetJWKSDown(false)
	require.Eventually(t, func() bool { return src.Ready(t.Context()) == nil }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, h.svc.LoginEventsReady(t.Context()))
	require.Equal(t, http.StatusNoContent, h.post(t, "jwt", tokenBody(h.partnerToken(t, "partner-9", nil)), nil).Code)
	require.NotNil(t, h.latest(t, "partner-9"))
}

// rejectedEventKeep posts and asserts status and that subject stays as it was.
func (h *harness) rejectedEventKeep(t *testing.T, provider string, body []byte, status int, subject string) {
	t.Helper()
	before := h.latest(t, subject)
	w := h.post(t, provider, body, nil)
	require.Equal(t, status, w.Code, w.Body.String())
	assert.Equal(t, before, h.latest(t, subject))
}
