package oidc_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc"
	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// standalone is a TokenVerifier over a static copy of the IdP's keys, as a
// login-event provider would build one.
func standalone(t testing.TB, idp *oidctest.Provider, clock bridge.Clock) *oidc.TokenVerifier {
	t.Helper()
	kf := standaloneKeys(t, idp)
	v, err := oidc.NewTokenVerifier(oidc.VerifierConfig{
		Issuer:      idp.Issuer(),
		Audience:    idp.ClientID(),
		Algorithms:  []string{"RS256", "ES256"},
		Leeway:      30 * time.Second,
		MaxTokenAge: 10 * time.Minute,
		Clock:       clock,
	}, kf)
	require.NoError(t, err)
	return v
}

// standaloneKeys is a static copy of the IdP's JWK Set.
func standaloneKeys(t testing.TB, idp *oidctest.Provider) oidc.Keys {
	t.Helper()
	kf, err := keyfunc.NewJWKSetJSON(json.RawMessage(idp.JWKS()))
	require.NoError(t, err)
	return kf
}

func TestTokenVerifierStandalone(t *testing.T) {
	clock := newClock()
	idp := oidctest.NewTest(t, oidctest.Config{Now: clock.Now, TokenTTL: time.Hour})
	v := standalone(t, idp, clock)

	claims := idp.Claims(oidctest.User{Subject: "evt-1", Email: "e@example.test", EmailVerified: true}, "")
	raw, err := idp.Sign(claims, idp.KID("ES256"))
	require.NoError(t, err)
	got, err := v.Verify(t.Context(), raw)
	require.NoError(t, err)
	id, err := oidc.MapIdentity(got, config.ClaimMapping{}, "Acme", clock.Now())
	require.NoError(t, err)
	assert.Equal(t, "evt-1", id.Subject)
	assert.Equal(t, idp.Issuer(), id.Issuer)
	assert.True(t, id.EmailVerified)

	// A nonce is required by VerifyIDToken, from the caller and in the token.
	_, err = v.VerifyIDToken(t.Context(), raw, "")
	requireRejected(t, err, "id token: no nonce expected")
	_, err = v.VerifyIDToken(t.Context(), raw, "n-1")
	requireRejected(t, err, "id token: nonce missing")

	// Time moves on: too old, then expired.
	clock.Advance(10*time.Minute + 31*time.Second)
	_, err = v.Verify(t.Context(), raw)
	requireRejected(t, err, "id token: too old")
	clock.Advance(time.Hour)
	_, err = v.Verify(t.Context(), raw)
	requireRejected(t, err, "id token: expired")

	// Oversized input never reaches the parser.
	_, err = v.Verify(t.Context(), strings.Repeat("a", 300<<10))
	requireRejected(t, err, "id token: malformed")
}

func TestNewTokenVerifierRefuses(t *testing.T) {
	kf, err := keyfunc.NewJWKSetJSON(json.RawMessage(`{"keys":[]}`))
	require.NoError(t, err)
	base := oidc.VerifierConfig{Issuer: "https://idp.example", Audience: "c", MaxTokenAge: time.Minute}
	for _, tc := range []struct {
		name string
		mod  func(*oidc.VerifierConfig)
	}{
		{"HS256", func(c *oidc.VerifierConfig) { c.Algorithms = []string{"HS256"} }},
		{"none", func(c *oidc.VerifierConfig) { c.Algorithms = []string{"none"} }},
		{"no issuer", func(c *oidc.VerifierConfig) { c.Issuer = "" }},
		{"no audience", func(c *oidc.VerifierConfig) { c.Audience = "" }},
		{"no max age", func(c *oidc.VerifierConfig) { c.MaxTokenAge = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			_, err := oidc.NewTokenVerifier(c, kf)
			require.Error(t, err)
		})
	}
}

// FuzzVerify feeds arbitrary strings to the verifier: it must never panic,
// and nothing but the one genuine token may verify.
func FuzzVerify(f *testing.F) {
	clock := newClock()
	idp, err := oidctest.Start(oidctest.Config{Now: clock.Now})
	require.NoError(f, err)
	f.Cleanup(idp.Close)
	v := standalone(f, idp, clock)
	claims := idp.Claims(oidctest.User{Subject: "fuzz"}, "")
	genuine, err := idp.Sign(claims, idp.KID("ES256"))
	require.NoError(f, err)
	parts := strings.Split(genuine, ".")

	f.Add(genuine)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(idp.NoneToken(claims))
	f.Add("e30.e30.")
	f.Add("..")
	f.Add(parts[0] + "." + parts[1] + "." + parts[2] + "=")
	f.Add(strings.ToUpper(genuine))
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := v.Verify(t.Context(), raw)
		if err != nil {
			if oidc.Reason(err) == "" {
				t.Fatalf("error without reason: %v", err)
			}
			return
		}
		if got["sub"] != "fuzz" || got["iss"] != idp.Issuer() {
			t.Fatalf("verified unexpected claims %v", got)
		}
	})
}
