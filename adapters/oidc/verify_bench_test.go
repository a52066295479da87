package oidc_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc"
	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// BenchmarkVerifyIDToken is the ID-token check of every login callback
// (and of IdP login events): real keys (RSA 2048 RS256 and P-256 ES256
// from oidctest), a static copy of the JWK Set (no network), the whole
// RFC 8725 check list and the claim mapping.
func BenchmarkVerifyIDToken(b *testing.B) {
	clock := newClock()
	idp := oidctest.NewTest(b, oidctest.Config{Now: clock.Now, TokenTTL: time.Hour})
	kf, err := keyfunc.NewJWKSetJSON(json.RawMessage(idp.JWKS()))
	if err != nil {
		b.Fatal(err)
	}
	v, err := oidc.NewTokenVerifier(oidc.VerifierConfig{
		Issuer: idp.Issuer(), Audience: idp.ClientID(), Algorithms: []string{"RS256", "ES256"},
		Leeway: 30 * time.Second, MaxTokenAge: 10 * time.Minute, Clock: clock,
	}, kf)
	if err != nil {
		b.Fatal(err)
	}
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			claims := idp.Claims(oidctest.User{Subject: "u-1001", Name: "Alex Morgan", Email: "alex@example.test", EmailVerified: true}, "n-0123456789")
			raw, err := idp.Sign(claims, idp.KID(alg))
			if err != nil {
				b.Fatal(err)
			}
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				got, err := v.VerifyIDToken(ctx, raw, "n-0123456789")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := oidc.MapIdentity(got, config.ClaimMapping{}, "Acme", clock.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
