package idpevents_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// TestAttackCatalogue has one subtest per row of the attack catalogue in
// reference/idp.md §4, named after the row. Each drives the attack through
// the real components (the OIDC login at the service, or the /idp route of
// the real router) with real keys, secrets and signatures, and asserts the
// rejection and that nothing changed in the store: the conversation is as
// before, no login is recorded, no outbox entry is written.
func TestAttackCatalogue(t *testing.T) {
	for _, row := range []struct {
		name string
		test func(t *testing.T)
	}{
		{"01 alg none", row01AlgNone},
		{"02 RS256 to HS256 key confusion", row02KeyConfusion},
		{"03 kid injection", row03KidInjection},
		{"04 jku x5u jwk x5c in header", row04HeaderKeys},
		{"05 expired, not yet valid or stale token", row05Time},
		{"06 wrong iss aud azp, token for another client, mix-up", row06Audience},
		{"07 nonce replay, ID token from another session", row07Nonce},
		{"08 forged state, login CSRF", row08State},
		{"09a login-link phishing", row09aPhishing},
		{"09b reverse fixation", row09bFixation},
		{"09c link token leaked via logs or Referer", row09cLeak},
		{"10 open redirect", row10OpenRedirect},
		{"11 webhook signature forgery", row11Forgery},
		{"12 timing attack on MAC or secret compare", row12Timing},
		{"13 replayed webhook", row13Replay},
		{"14 oversized body or headers", row14Oversized},
		{"15 JSON bombs, deep nesting, huge arrays", row15JSONBombs},
		{"16 slow-loris, slow body", row16SlowLoris},
		{"17 unknown kid flood", row17KidFlood},
		{"18 JWKS unavailable or poisoned at start", row18JWKSStart},
		{"19 spoofed client IP", row19SpoofedIP},
		{"20 identity confusion, email reuse", row20Identity},
	} {
		t.Run(row.name, row.test)
	}
}

// must returns s, or fails the test (by panic: it takes a call's two results).
func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

var convSeq atomic.Int64

// idTokenRejected runs a login, in a new conversation of h, whose ID token
// the IdP shapes with hook.
func idTokenRejected(t *testing.T, h *harness, hook func(h *harness, is *oidctest.Issue)) {
	t.Helper()
	f := h.startLogin(t, fmt.Sprint("conv-", convSeq.Add(1)))
	h.idp.OnIssue(func(is *oidctest.Issue) { hook(h, is) })
	defer h.idp.OnIssue(nil)
	h.finishRejected(t, f, bridge.ErrLoginRejected)
}

func row01AlgNone(t *testing.T) {
	h := newHarness(t)
	t.Run("ID token", func(t *testing.T) {
		idTokenRejected(t, h, func(h *harness, is *oidctest.Issue) { is.Raw = h.idp.NoneToken(is.Claims) })
	})
	c := h.partner.Claims(oidctest.User{Subject: "partner-7"}, "")
	c["aud"] = jwtAudience("jwt")
	for _, p := range []string{"jwt", "auth0", "auth0-action"} {
		t.Run("posted to "+p, func(t *testing.T) {
			h.rejectedEvent(t, p, tokenBody(h.partner.NoneToken(c)), nil, http.StatusUnauthorized)
		})
	}
}

func row02KeyConfusion(t *testing.T) {
	h := newHarness(t)
	t.Run("ID token HS256 keyed with the RSA public key PEM", func(t *testing.T) {
		idTokenRejected(t, h, func(h *harness, is *oidctest.Issue) {
			pem, err := h.idp.PublicKeyPEM(is.KID)
			require.NoError(t, err)
			is.Raw = must(h.idp.HMACToken(is.Claims, is.KID, pem))
		})
	})
	c := h.partner.Claims(oidctest.User{Subject: "partner-7"}, "")
	c["aud"] = jwtAudience("jwt")
	pem, err := h.partner.PublicKeyPEM("")
	require.NoError(t, err)
	t.Run("posted HS256 keyed with the issuer's PEM", func(t *testing.T) {
		h.rejectedEvent(t, "jwt", tokenBody(must(h.partner.HMACToken(c, h.partner.KID("RS256"), pem))), nil, http.StatusUnauthorized)
	})
	t.Run("posted HS256 keyed with the issuer's JWK Set", func(t *testing.T) {
		h.rejectedEvent(t, "jwt", tokenBody(must(h.partner.HMACToken(c, h.partner.KID("RS256"), h.partner.JWKS()))), nil, http.StatusUnauthorized)
	})
	t.Run("RS256 token to the HS256 source", func(t *testing.T) {
		hc := jwt.MapClaims{"sub": "auth0|123456", "iss": hsIssuer, "iat": h.clock.Now().Unix(), "exp": h.clock.Now().Add(time.Minute).Unix()}
		h.rejectedEvent(t, "auth0-action", tokenBody(must(h.partner.Sign(hc, ""))), nil, http.StatusUnauthorized)
	})
	t.Run("HS256 token keyed with the Action secret to the JWK Set source", func(t *testing.T) {
		h.rejectedEvent(t, "auth0", tokenBody(h.hsToken(t, hsSecret, "auth0|123456", nil)), nil, http.StatusUnauthorized)
	})
}

func row03KidInjection(t *testing.T) {
	kids := []string{"../../../../etc/passwd", "' OR '1'='1' --", "file:///dev/zero", "http://127.0.0.1:1/jwks", strings.Repeat("k", 8<<10)}
	h := newHarness(t)
	t.Run("ID token", func(t *testing.T) {
		for _, kid := range kids {
			idTokenRejected(t, h, func(h *harness, is *oidctest.Issue) {
				is.Raw = must(h.idp.ForeignToken(is.Claims, "RS256", kid))
			})
		}
	})
	fetches := h.partner.JWKSFetches()
	for i, kid := range kids {
		t.Run(fmt.Sprint("posted ", i), func(t *testing.T) {
			c := h.partner.Claims(oidctest.User{Subject: "partner-7"}, "")
			c["aud"] = jwtAudience("jwt")
			w := h.post(t, "jwt", tokenBody(must(h.partner.ForeignToken(c, "RS256", kid))), nil)
			require.Equal(t, http.StatusUnauthorized, w.Code)
			assert.Contains(t, w.Body.String(), "unknown signing key")
			assert.NotContains(t, w.Body.String(), kid, "the kid is not echoed")
			h.assertNoLogins(t)
		})
	}
	assert.LessOrEqual(t, h.partner.JWKSFetches(), fetches+1, "kid selects from memory; one rate-limited refresh at most")
}

// attackerToken is signed by a key the attacker owns, with headers naming
// where to find that key (jku/x5u served by the attacker, the JWK inline).
func attackerToken(t *testing.T, claims jwt.MapClaims, jkuURL string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pub, err := jwkset.NewJWKFromKey(key.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "attacker", ALG: jwkset.AlgRS256}})
	require.NoError(t, err)
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = "attacker"
	tok.Header["jku"] = jkuURL + "/jwks"
	tok.Header["x5u"] = jkuURL + "/cert.pem"
	tok.Header["jwk"] = pub.Marshal()
	tok.Header["x5c"] = []string{base64.StdEncoding.EncodeToString([]byte("not a cert"))}
	return must(tok.SignedString(key))
}

func row04HeaderKeys(t *testing.T) {
	var hits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(attacker.Close)
	h := newHarness(t)
	t.Run("ID token", func(t *testing.T) {
		idTokenRejected(t, h, func(h *harness, is *oidctest.Issue) { is.Raw = attackerToken(t, is.Claims, attacker.URL) })
	})
	t.Run("posted", func(t *testing.T) {
		c := h.partner.Claims(oidctest.User{Subject: "partner-7"}, "")
		c["aud"] = jwtAudience("jwt")
		h.rejectedEvent(t, "jwt", tokenBody(attackerToken(t, c, attacker.URL)), nil, http.StatusUnauthorized)
	})
	assert.Zero(t, hits.Load(), "jku/x5u are never fetched")
}

func row05Time(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name string
		mod  func(now time.Time, c jwt.MapClaims)
	}{
		{"expired", func(now time.Time, c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-2*time.Minute).Unix(), now.Add(-31*time.Second).Unix()
		}},
		{"exp missing", func(now time.Time, c jwt.MapClaims) { delete(c, "exp") }},
		{"not yet valid", func(now time.Time, c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() }},
		{"issued in the future", func(now time.Time, c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() }},
		{"stale iat", func(now time.Time, c jwt.MapClaims) { c["iat"] = now.Add(-11 * time.Minute).Unix() }},
		{"iat missing", func(now time.Time, c jwt.MapClaims) { delete(c, "iat") }},
	} {
		t.Run("ID token "+tc.name, func(t *testing.T) {
			idTokenRejected(t, h, func(h *harness, is *oidctest.Issue) { tc.mod(h.clock.Now(), is.Claims) })
		})
		t.Run("posted "+tc.name, func(t *testing.T) {
			raw := h.partnerToken(t, "partner-7", func(c jwt.MapClaims) { tc.mod(h.clock.Now(), c) })
			h.rejectedEvent(t, "jwt", tokenBody(raw), nil, http.StatusUnauthorized)
			h.rejectedEvent(t, "auth0-action", tokenBody(h.hsToken(t, hsSecret, "auth0|123456", func(c jwt.MapClaims) { tc.mod(h.clock.Now(), c) })), nil, http.StatusUnauthorized)
		})
	}
	t.Run("posted token used after time moved on", func(t *testing.T) {
		h := newHarness(t)
		raw := h.partnerToken(t, "partner-7", nil)
		h.clock.Advance(10*time.Minute + 31*time.Second)
		h.rejectedEvent(t, "jwt", tokenBody(raw), nil, http.StatusUnauthorized)
	})
}

func row06Audience(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name string
		mod  func(h *harness, c jwt.MapClaims)
	}{
		{"wrong iss", func(h *harness, c jwt.MapClaims) { c["iss"] = "https://evil.example" }},
		{"iss of another IdP", func(h *harness, c jwt.MapClaims) { c["iss"] = h.tenant.Issuer() }},
		{"token for another client", func(h *harness, c jwt.MapClaims) { c["aud"] = "another-client"; delete(c, "azp") }},
		{"untrusted extra aud", func(h *harness, c jwt.MapClaims) { c["aud"] = []any{c["aud"], "https://untrusted.example"} }},
		{"azp of another client", func(h *harness, c jwt.MapClaims) { c["azp"] = "another-client" }},
	} {
		t.Run("ID token "+tc.name, func(t *testing.T) {
			idTokenRejected(t, h, func(h *harness, is *oidctest.Issue) { tc.mod(h, is.Claims) })
		})
		t.Run("posted "+tc.name, func(t *testing.T) {
			h.rejectedEvent(t, "jwt", tokenBody(h.partnerToken(t, "partner-7", func(c jwt.MapClaims) { tc.mod(h, c) })), nil, http.StatusUnauthorized)
		})
	}
	t.Run("mix-up: callback iss of another IdP", func(t *testing.T) {
		f := h.startLogin(t, "conv-mixup")
		f.cb.Iss = h.tenant.Issuer()
		h.finishRejected(t, f, bridge.ErrLoginRejected)
	})
	t.Run("posted: a token of the Auth0 tenant sent to the jwt provider", func(t *testing.T) {
		c := h.tenant.Claims(oidctest.User{Subject: "partner-7"}, "")
		c["aud"], c["iss"] = jwtAudience("jwt"), h.partner.Issuer()
		h.rejectedEvent(t, "jwt", tokenBody(must(h.tenant.Sign(c, ""))), nil, http.StatusUnauthorized)
	})
}

func row07Nonce(t *testing.T) {
	t.Run("callback replayed", func(t *testing.T) {
		h := newHarness(t)
		f := h.startLogin(t, "conv-1")
		_, err := h.svc.FinishLogin(t.Context(), brandID, f.cookie, f.cb)
		require.NoError(t, err)
		after := h.session(t, f.key)
		require.Equal(t, bridge.StateLoginVerified, after.State)
		_, err = h.svc.FinishLogin(t.Context(), brandID, f.cookie, f.cb)
		require.ErrorIs(t, err, bridge.ErrLoginInvalid, "the transaction (and its nonce) is single use")
		assert.Equal(t, after, h.session(t, f.key))
		assert.Equal(t, int64(1), h.idp.TokenRequests(), "a replay never reaches the token endpoint")
	})
	t.Run("ID token of another session", func(t *testing.T) {
		h := newHarness(t)
		a := h.startLogin(t, "conv-a")
		b := h.startLogin(t, "conv-b")
		h.idp.OnIssue(func(is *oidctest.Issue) { is.Claims["nonce"] = a.nonce })
		h.finishRejected(t, b, bridge.ErrLoginRejected)
	})
	t.Run("nonce missing", func(t *testing.T) {
		h := newHarness(t)
		idTokenRejected(t, h, func(h *harness, is *oidctest.Issue) { delete(is.Claims, "nonce") })
	})
}

func row08State(t *testing.T) {
	t.Run("forged state", func(t *testing.T) {
		h := newHarness(t)
		f := h.startLogin(t, "conv-1")
		f.cb.State = bridge.RandomString(32)
		h.finishRejected(t, f, bridge.ErrLoginInvalid)
	})
	t.Run("no transaction cookie", func(t *testing.T) {
		h := newHarness(t)
		f := h.startLogin(t, "conv-1")
		f.cookie = ""
		h.finishRejected(t, f, bridge.ErrLoginInvalid)
	})
	t.Run("attacker's code in the victim's browser", func(t *testing.T) {
		h := newHarness(t)
		attacker := h.startLogin(t, "conv-attacker")
		victim := h.startLogin(t, "conv-victim")
		victim.cb = attacker.cb // the victim's cookie, the attacker's callback
		h.finishRejected(t, victim, bridge.ErrLoginInvalid)
		assert.Zero(t, h.idp.TokenRequests())
	})
}

func row09aPhishing(t *testing.T) {
	// The attacker forwards their conversation's link; the victim logs in.
	h := newHarness(t)
	f := h.startLogin(t, "conv-attacker")
	res, err := h.svc.FinishLogin(t.Context(), brandID, f.cookie, f.cb)
	require.NoError(t, err)
	require.NotEmpty(t, res.Code, "binding confirm-code: the login waits for its code in the conversation")
	s := h.session(t, f.key)
	assert.Equal(t, bridge.StateLoginVerified, s.State)
	assert.Nil(t, s.Identity, "not bound by the login alone")
	assert.False(t, res.SteppedUp)

	// The victim types the code in their own conversation: nothing binds.
	victim := bridge.Key{Brand: brandID, Conversation: "conv-victim"}
	obs := bridge.Observation{Key: victim, Platform: "standard", Consumer: "anon-victim", Channel: "web", At: h.clock.Now()}
	result, _, err := h.store.ConfirmCode(t.Context(), bridge.ConfirmCode{EventID: "m-1", Obs: obs, CodeHash: bridge.CodeHash(victim, res.Code), MaxAttempts: 3})
	require.NoError(t, err)
	assert.Equal(t, bridge.CodeNoPending, result)
	assert.Equal(t, s, h.session(t, f.key))

	// Login events about the victim never bind a conversation either.
	before := h.session(t, f.key)
	require.Equal(t, http.StatusNoContent, h.post(t, "jwt", tokenBody(h.partnerToken(t, "user-42", nil)), nil).Code)
	require.Equal(t, http.StatusNoContent, h.post(t, "okta", oktaBody(oktaEvent{UUID: "u-1", Type: "user.session.start", Actor: "user-42", Result: "SUCCESS", Published: h.clock.Now()}), oktaHeader(oktaSecret)).Code)
	assert.Equal(t, before, h.session(t, f.key))
}

func row09bFixation(t *testing.T) {
	h := newHarness(t)
	f := h.startLogin(t, "conv-1")
	res, err := h.svc.FinishLogin(t.Context(), brandID, f.cookie, f.cb)
	require.NoError(t, err)
	obs := bridge.Observation{Key: f.key, Platform: "standard", Consumer: "anon-conv-1", Channel: "web", At: h.clock.Now()}
	result, _, err := h.store.ConfirmCode(t.Context(), bridge.ConfirmCode{EventID: "m-1", Obs: obs, CodeHash: bridge.CodeHash(f.key, res.Code), MaxAttempts: 3})
	require.NoError(t, err)
	require.Equal(t, bridge.CodeMatched, result)
	bound := h.session(t, f.key)
	require.Equal(t, bridge.StateSteppedUp, bound.State)

	// A second login (the attacker's identity) for the bound conversation
	// cannot even start; login events change nothing either.
	_, err = h.svc.RequestLink(t.Context(), brandID, f.key.Conversation, false)
	require.ErrorIs(t, err, bridge.ErrAlreadySteppedUp)
	require.Equal(t, http.StatusNoContent, h.post(t, "jwt", tokenBody(h.partnerToken(t, "evil", nil)), nil).Code)
	assert.Equal(t, bound, h.session(t, f.key))
}

func row09cLeak(t *testing.T) {
	h := newHarness(t)
	key := bridge.Key{Brand: brandID, Conversation: "conv-1"}
	err := h.store.Observe(t.Context(), "s-1", bridge.Observation{Key: key, Platform: "standard", Consumer: "anon", Channel: "web", At: h.clock.Now()})
	require.NoError(t, err)
	link, err := h.svc.RequestLink(t.Context(), brandID, "conv-1", false)
	require.NoError(t, err)
	u, err := url.Parse(link.URL)
	require.NoError(t, err)
	ticket := u.Path[strings.LastIndex(u.Path, "/")+1:]

	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req := httptest.NewRequest(method, u.Path, nil)
		w := httptest.NewRecorder()
		h.router.ServeHTTP(w, req)
		assert.Less(t, w.Code, 400, method)
		assert.Equal(t, "no-referrer", w.Header().Get("Referrer-Policy"), method)
		assert.Equal(t, "no-store", w.Header().Get("Cache-Control"), method)
	}
	f := h.startLogin(t, "conv-2")
	raw := h.partnerToken(t, "partner-7", nil)
	require.Equal(t, http.StatusNoContent, h.post(t, "jwt", tokenBody(raw), nil).Code)
	_, err = h.svc.FinishLogin(t.Context(), brandID, f.cookie, f.cb)
	require.NoError(t, err)
	logs := h.logs.String()
	for name, s := range map[string]string{"ticket": ticket, "txn cookie": f.cookie, "code": f.cb.Code, "state": f.cb.State, "nonce": f.nonce, "posted token": strings.Split(raw, ".")[1]} {
		assert.NotContains(t, logs, s, name)
	}
}

func row10OpenRedirect(t *testing.T) {
	h := newHarness(t)
	key := bridge.Key{Brand: brandID, Conversation: "conv-1"}
	err := h.store.Observe(t.Context(), "s-1", bridge.Observation{Key: key, Platform: "standard", Consumer: "anon", Channel: "web", At: h.clock.Now()})
	require.NoError(t, err)
	link, err := h.svc.RequestLink(t.Context(), brandID, "conv-1", false)
	require.NoError(t, err)
	u, err := url.Parse(link.URL)
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, u.Path+"?return_to=https://evil.example/&redirect_uri=https://evil.example/cb", nil)
	w := httptest.NewRecorder()
	h.router.ServeHTTP(w, req)
	require.Equal(t, http.StatusSeeOther, w.Code)
	loc, err := url.Parse(w.Header().Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, h.idp.Issuer()+"/authorize", loc.Scheme+"://"+loc.Host+loc.Path, "only ever to the IdP")
	assert.Equal(t, publicURL+"/callback/"+brandID, loc.Query().Get("redirect_uri"), "the configured redirect URI, whatever the request says")
	assert.NotContains(t, w.Header().Get("Location"), "evil.example")
	assert.Nil(t, h.latest(t, "user-42"))
}

func row11Forgery(t *testing.T) {
	h := newHarness(t)
	now := h.clock.Now()
	okta := oktaBody(oktaEvent{UUID: "u-1", Type: "user.session.start", Actor: "00uz9fj5aT69fHVro1d6", Result: "SUCCESS", Published: now})
	kc := keycloakBody("e-1", "access.LOGIN", "kc-user-1", "bridge", now)
	other := keycloakBody("e-2", "access.LOGIN", "evil", "bridge", now)
	for _, tc := range []struct {
		name, provider string
		body           []byte
		header         http.Header
	}{
		{"okta without Authorization", "okta", okta, http.Header{"Content-Type": {"application/json"}}},
		{"okta with a wrong secret", "okta", okta, oktaHeader("wrong-secret-wrong-secret-wrong-secret")},
		{"okta with Bearer prefix", "okta", okta, oktaHeader("Bearer " + oktaSecret)},
		{"okta with two Authorization headers", "okta", okta, http.Header{"Authorization": {"x", oktaSecret}}},
		{"keycloak without signature", "keycloak", kc, nil},
		{"keycloak signed with another secret", "keycloak", kc, keycloakHeader("another-secret-another-secret-another", kc)},
		{"keycloak signature of another body", "keycloak", kc, keycloakHeader(kcSecret, other)},
		{"keycloak signature over the body plus a space", "keycloak", append(append([]byte{}, kc...), ' '), keycloakHeader(kcSecret, kc)},
		{"keycloak HMAC-SHA1 length", "keycloak", kc, http.Header{"X-Keycloak-Signature": {strings.Repeat("ab", 20)}}},
		{"keycloak signature not hex", "keycloak", kc, http.Header{"X-Keycloak-Signature": {strings.Repeat("zz", 32)}}},
		{"jwt with a tampered payload", "jwt", tamper(t, h.partnerToken(t, "partner-7", nil), "evil"), nil},
		{"auth0 Action token with a tampered payload", "auth0-action", tamper(t, h.hsToken(t, hsSecret, "auth0|123456", nil), "evil"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.provider == "jwt" || tc.provider == "auth0-action" {
				body = tokenBody(string(tc.body))
			}
			h.rejectedEvent(t, tc.provider, body, tc.header, http.StatusUnauthorized)
		})
	}
	assert.Nil(t, h.latest(t, "kc-user-1"))
}

// tamper changes sub in a signed token, keeping the signature.
func tamper(t *testing.T, raw, sub string) []byte {
	t.Helper()
	parts := strings.Split(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var c map[string]any
	require.NoError(t, json.Unmarshal(b, &c))
	c["sub"] = sub
	b, _ = json.Marshal(c)
	return []byte(parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2])
}

// row12Timing cannot measure timing in a unit test; it pins the inputs a
// variable-time compare gets wrong or leaks on (prefix, extension, last
// byte) and the code compares digests with crypto/subtle and MACs with
// hmac.Equal (see okta.go, keycloak.go, idpevents.go secretSet).
func row12Timing(t *testing.T) {
	h := newHarness(t)
	okta := oktaBody(oktaEvent{UUID: "u-1", Type: "user.session.start", Actor: "00uz9fj5aT69fHVro1d6", Result: "SUCCESS", Published: h.clock.Now()})
	kc := keycloakBody("e-1", "access.LOGIN", "kc-user-1", "bridge", h.clock.Now())
	sig := keycloakSig(kcSecret, kc)
	flip := func(s string) string { return s[:len(s)-1] + string(s[len(s)-1]^1) }
	for _, secret := range []string{oktaSecret[:len(oktaSecret)-1], oktaSecret + "x", flip(oktaSecret), strings.ToUpper(oktaSecret)} {
		h.rejectedEvent(t, "okta", okta, oktaHeader(secret), http.StatusUnauthorized)
	}
	for _, s := range []string{flip(sig), sig[:len(sig)-2] + "00", strings.Repeat("0", len(sig))} {
		h.rejectedEvent(t, "keycloak", kc, http.Header{"X-Keycloak-Signature": {s}}, http.StatusUnauthorized)
	}
	assert.Nil(t, h.latest(t, "kc-user-1"))
}

func row13Replay(t *testing.T) {
	h := newHarness(t)
	now := h.clock.Now()
	first := keycloakBody("e-1", "access.LOGIN", "kc-user-1", "bridge", now.Add(-2*time.Minute))
	newer := keycloakBody("e-2", "access.LOGIN", "kc-user-1", "bridge", now.Add(-time.Minute))
	require.Equal(t, http.StatusNoContent, h.post(t, "keycloak", first, keycloakHeader(kcSecret, first)).Code)
	require.Equal(t, http.StatusNoContent, h.post(t, "keycloak", newer, keycloakHeader(kcSecret, newer)).Code)
	want := h.latest(t, "kc-user-1")
	require.NotNil(t, want)

	t.Run("the same delivery again", func(t *testing.T) {
		require.Equal(t, http.StatusNoContent, h.post(t, "keycloak", newer, keycloakHeader(kcSecret, newer)).Code)
		assert.Equal(t, want, h.latest(t, "kc-user-1"))
	})
	t.Run("an older delivery after a newer one", func(t *testing.T) {
		require.Equal(t, http.StatusNoContent, h.post(t, "keycloak", first, keycloakHeader(kcSecret, first)).Code)
		assert.Equal(t, want, h.latest(t, "kc-user-1"), "a late delivery never rolls the login back")
	})
	t.Run("a captured delivery replayed after max_event_age", func(t *testing.T) {
		h2 := newHarness(t)
		old := keycloakBody("e-9", "access.LOGIN", "kc-user-1", "bridge", h2.clock.Now())
		h2.clock.Advance(11 * time.Minute)
		require.Equal(t, http.StatusNoContent, h2.post(t, "keycloak", old, keycloakHeader(kcSecret, old)).Code)
		h2.assertNoLogins(t)
	})
	t.Run("a posted token twice", func(t *testing.T) {
		raw := h.partnerToken(t, "partner-7", nil)
		require.Equal(t, http.StatusNoContent, h.post(t, "jwt", tokenBody(raw), nil).Code)
		rec := h.latest(t, "partner-7")
		h.clock.Advance(time.Minute)
		require.Equal(t, http.StatusNoContent, h.post(t, "jwt", tokenBody(raw), nil).Code)
		assert.Equal(t, rec, h.latest(t, "partner-7"), "recorded at iat: the replay changes nothing")
	})
	t.Run("an Okta event twice", func(t *testing.T) {
		body := oktaBody(oktaEvent{UUID: "u-1", Type: "user.session.start", Actor: "00u-okta", Result: "SUCCESS", Published: h.clock.Now()})
		require.Equal(t, http.StatusNoContent, h.post(t, "okta", body, oktaHeader(oktaSecret)).Code)
		rec := h.latest(t, "00u-okta")
		require.NotNil(t, rec)
		require.Equal(t, http.StatusNoContent, h.post(t, "okta", body, oktaHeader(oktaSecret)).Code)
		assert.Equal(t, rec, h.latest(t, "00u-okta"))
	})
}

func row14Oversized(t *testing.T) {
	h := newHarness(t)
	big := oktaBody(oktaEvent{UUID: "u-1", Type: "user.session.start", Actor: "00uz9fj5aT69fHVro1d6", Result: "SUCCESS", Published: h.clock.Now()})
	big = append(big[:len(big)-1], []byte(`,"pad":"`+strings.Repeat("a", 1<<20)+`"}`)...)
	h.rejectedEvent(t, "okta", big, oktaHeader(oktaSecret), http.StatusRequestEntityTooLarge)
	kc := []byte(strings.Repeat(" ", 1<<20) + "{}")
	h.rejectedEvent(t, "keycloak", kc, keycloakHeader(kcSecret, kc), http.StatusRequestEntityTooLarge)
	h.rejectedEvent(t, "jwt", []byte(strings.Repeat("a", (1<<20)+1)), nil, http.StatusRequestEntityTooLarge)
	// Under the body limit but over the token limit.
	h.rejectedEvent(t, "jwt", tokenBody(strings.Repeat("a.", 40<<10)+"a"), nil, http.StatusBadRequest)
}

func row15JSONBombs(t *testing.T) {
	h := newHarness(t)
	deep := []byte(`{"eventType":"com.okta.event_hook","data":{"events":[` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `]}}`)
	h.rejectedEvent(t, "okta", deep, oktaHeader(oktaSecret), http.StatusBadRequest)
	var many []oktaEvent
	for i := range 501 {
		many = append(many, oktaEvent{UUID: fmt.Sprint("u-", i), Type: "user.session.start", Actor: "00uz9fj5aT69fHVro1d6", Result: "SUCCESS", Published: h.clock.Now()})
	}
	h.rejectedEvent(t, "okta", oktaBody(many...), oktaHeader(oktaSecret), http.StatusBadRequest)
	kcDeep := []byte(`{"type":"access.LOGIN","details":` + strings.Repeat(`{"a":`, 20000) + `1` + strings.Repeat("}", 20000) + `}`)
	h.rejectedEvent(t, "keycloak", kcDeep, keycloakHeader(kcSecret, kcDeep), http.StatusBadRequest)
	for _, body := range []string{`{"token":"a.b.c","extra":1}`, `{"token":["a.b.c"]}`, `{"token":"a.b.c"}{"token":"d.e.f"}`, `[]`, `null`} {
		h.rejectedEvent(t, "jwt", []byte(body), nil, http.StatusBadRequest)
	}
	oktaWrongType := []byte(`{"eventType":"com.example.other","data":{"events":[]}}`)
	h.rejectedEvent(t, "okta", oktaWrongType, oktaHeader(oktaSecret), http.StatusBadRequest)
}

// row16SlowLoris: slow requests are cut by the http.Server that
// cmd/stepup-bridge builds from config.Server (this package has no server
// of its own). What is checked here is that the configuration it is built
// from always carries the timeouts (no zero = no timeout) and a body cap.
func row16SlowLoris(t *testing.T) {
	cfg, err := config.Parse([]byte(`
server:
  public_url: https://bridge.example
brands: []
`), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	assert.Positive(t, cfg.Server.ReadHeaderTimeout)
	assert.Positive(t, cfg.Server.ReadTimeout)
	assert.Positive(t, cfg.Server.WriteTimeout)
	assert.Positive(t, cfg.Server.IdleTimeout)
	assert.Positive(t, cfg.Server.MaxBodyBytes)
	assert.Positive(t, cfg.Server.MaxHeaderBytes)
	_, err = config.Parse([]byte(`
server:
  public_url: https://bridge.example
  read_header_timeout: 0s
brands: []
`), func(string) (string, bool) { return "", false })
	require.ErrorContains(t, err, "read_header_timeout: must be positive")
}

func row17KidFlood(t *testing.T) {
	h := newHarness(t)
	fetches := h.partner.JWKSFetches()
	start := time.Now()
	for i := range 30 {
		c := h.partner.Claims(oidctest.User{Subject: "partner-7"}, "")
		c["aud"] = jwtAudience("jwt")
		w := h.post(t, "jwt", tokenBody(must(h.partner.ForeignToken(c, "ES256", fmt.Sprint("flood-", i)))), nil)
		require.Equal(t, http.StatusUnauthorized, w.Code)
	}
	assert.Less(t, time.Since(start), 10*time.Second, "no lookup blocks on the refresh limiter")
	assert.LessOrEqual(t, h.partner.JWKSFetches(), fetches+1, "one refresh per minute at most")
	h.assertNoLogins(t)
	// The genuine key still works during the flood.
	require.Equal(t, http.StatusNoContent, h.post(t, "jwt", tokenBody(h.partnerToken(t, "partner-8", nil)), nil).Code)
}

func row18JWKSStart(t *testing.T) {
	t.Run("unreachable: 503, never 401, nothing recorded", func(t *testing.T) {
		h := newHarness(t, func(c *harnessCfg) { c.beforeNew = func(h *harness) { h.partner.SetJWKSDown(true) } })
		w := h.post(t, "jwt", tokenBody(h.partnerToken(t, "partner-7", nil)), nil)
		require.Equal(t, http.StatusServiceUnavailable, w.Code)
		h.assertNoLogins(t)
		require.Error(t, h.svc.LoginEventsReady(t.Context()))
	})
	t.Run("poisoned with a symmetric key", func(t *testing.T) {
		secret := []byte("attacker-chosen-hmac-secret-0123456789")
		poisoned := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"keys":[{"kty":"oct","kid":"p","alg":"HS256","k":%q}]}`, base64.RawURLEncoding.EncodeToString(secret))
		}))
		t.Cleanup(poisoned.Close)
		h := newHarness(t, func(c *harnessCfg) {
			c.events = append(c.events, config.LoginEvents{
				Type: "jwt", Name: "poisoned", Issuer: "https://partner.example", JWKSURI: poisoned.URL, Audience: jwtAudience("poisoned"),
				Algorithms: []string{"RS256"}, MaxEventAge: 10 * time.Minute, Leeway: 30 * time.Second, HTTPTimeout: time.Second,
				Claims: config.ClaimMapping{Subject: "sub"},
			})
		})
		c := jwt.MapClaims{"iss": "https://partner.example", "aud": jwtAudience("poisoned"), "sub": "evil", "iat": h.clock.Now().Unix(), "exp": h.clock.Now().Add(time.Minute).Unix()}
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		tok.Header["kid"] = "p"
		raw := must(tok.SignedString(secret))
		w := h.post(t, "poisoned", tokenBody(raw), nil)
		require.Equal(t, http.StatusServiceUnavailable, w.Code, "no usable key: not ready")
		h.assertNoLogins(t)
		assert.Contains(t, h.logs.String(), "symmetric key in a public JWK Set")
	})
}

// row19SpoofedIP: no decision on /idp depends on the client address (no
// IP allow-list, no per-IP limit), so X-Forwarded-For cannot change an
// outcome there; trusted proxies are the router's setting
// (httpapi.Options.TrustedProxies, gin SetTrustedProxies). Checked: a
// spoofed header changes nothing about a rejected or accepted event.
func row19SpoofedIP(t *testing.T) {
	h := newHarness(t)
	okta := oktaBody(oktaEvent{UUID: "u-1", Type: "user.session.start", Actor: "00uz9fj5aT69fHVro1d6", Result: "SUCCESS", Published: h.clock.Now()})
	hdr := oktaHeader("wrong-secret-wrong-secret-wrong-secret")
	hdr.Set("X-Forwarded-For", "127.0.0.1")
	hdr.Set("X-Real-Ip", "10.0.0.1")
	h.rejectedEvent(t, "okta", okta, hdr, http.StatusUnauthorized)
}

func row20Identity(t *testing.T) {
	t.Run("ID token: email is never the key by default", func(t *testing.T) {
		h := newHarness(t)
		f := h.startLogin(t, "conv-1")
		h.idp.OnIssue(func(is *oidctest.Issue) {
			is.Claims["email"], is.Claims["email_verified"] = "victim@example.test", false
		})
		_, err := h.svc.FinishLogin(t.Context(), brandID, f.cookie, f.cb)
		require.NoError(t, err)
		s := h.session(t, f.key)
		require.NotNil(t, s.Pending)
		assert.Equal(t, "user-42", s.Pending.Subject, "bound on (iss, sub)")
		assert.False(t, s.Pending.EmailVerified)
	})
	t.Run("posted token: email subject only when verified", func(t *testing.T) {
		h := newHarness(t, func(c *harnessCfg) {
			c.events = append(c.events, config.LoginEvents{
				Type: "jwt", Name: "jwt-email", Issuer: c.events[2].Issuer, JWKSURI: c.events[2].JWKSURI, Audience: jwtAudience("jwt"),
				Algorithms: []string{"RS256"}, MaxEventAge: 10 * time.Minute, Leeway: 30 * time.Second, HTTPTimeout: time.Second,
				Claims: config.ClaimMapping{Subject: "email", EmailSubject: true},
			})
		})
		raw := h.partnerToken(t, "partner-7", func(c jwt.MapClaims) { c["email"], c["email_verified"] = "victim@example.test", false })
		h.rejectedEvent(t, "jwt-email", tokenBody(raw), nil, http.StatusUnauthorized)
		assert.Nil(t, h.latest(t, "victim@example.test"))
		// The default source keys on sub whatever the email says.
		require.Equal(t, http.StatusNoContent, h.post(t, "jwt", tokenBody(raw), nil).Code)
		assert.Nil(t, h.latest(t, "victim@example.test"))
		assert.NotNil(t, h.latest(t, "partner-7"))
	})
}
