package oidc_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc"
	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// TestSeveralIssuerSpellings: Google puts either "https://accounts.google.com"
// or "accounts.google.com" in iss; both are accepted when configured, and
// nothing else is.
func TestSeveralIssuerSpellings(t *testing.T) {
	const legacy = "accounts.example.test"
	for _, tc := range []struct {
		name   string
		extra  []string
		iss    func(e *env) any
		reason string // "" = accepted
	}{
		{"discovery issuer", []string{legacy}, func(e *env) any { return e.idp.Issuer() }, ""},
		{"configured legacy spelling", []string{legacy}, func(*env) any { return legacy }, ""},
		{"legacy spelling not configured", nil, func(*env) any { return legacy }, "id token: invalid issuer"},
		{"another spelling", []string{legacy}, func(*env) any { return "https://" + legacy }, "id token: invalid issuer"},
		{"trailing slash", []string{legacy}, func(e *env) any { return e.idp.Issuer() + "/" }, "id token: invalid issuer"},
		{"case differs", []string{legacy}, func(*env) any { return strings.ToUpper(legacy) }, "id token: invalid issuer"},
		{"iss not a string", []string{legacy}, func(*env) any { return []string{legacy} }, "id token: invalid issuer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(s *setup) { s.identity = func(c *config.Identity) { c.ExtraIssuers = tc.extra } })
			e.idp.OnIssue(func(is *oidctest.Issue) { is.Claims["iss"] = tc.iss(e) })
			id, err := e.redeem(t)
			if tc.reason != "" {
				requireRejected(t, err, tc.reason)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.iss(e), id.Issuer, "the identity records the issuer as the token spelled it")
		})
	}
}

// TestSubjectPolicy: the identity key is never a reassignable claim unless
// configured, and then only when verified; Entra's oid is scoped by tid.
func TestSubjectPolicy(t *testing.T) {
	const oid, tid = "00000000-0000-0000-66f3-3332eca7ea81", "9122040d-6c67-4c5b-b112-36a304b66dad"
	for _, tc := range []struct {
		name    string
		mapping config.ClaimMapping
		claims  map[string]any
		subject string // want; "" = rejected with reason
		reason  string
	}{
		{"entra oid+tid", config.ClaimMapping{Subject: "oid", Tenant: "tid"}, map[string]any{"oid": oid, "tid": tid}, tid + ":" + oid, ""},
		{"entra tid missing", config.ClaimMapping{Subject: "oid", Tenant: "tid"}, map[string]any{"oid": oid}, "", `id token: tenant claim "tid" missing`},
		{"entra tid not a string", config.ClaimMapping{Subject: "oid", Tenant: "tid"}, map[string]any{"oid": oid, "tid": 7}, "", `id token: tenant claim "tid" missing`},
		{"email as subject, not allowed", config.ClaimMapping{Subject: "email"}, map[string]any{"email_verified": true}, "", "id token: email-like subject claim not allowed"},
		{"preferred_username as subject, not allowed", config.ClaimMapping{Subject: "preferred_username"}, map[string]any{"preferred_username": "a@b.test"}, "", "id token: email-like subject claim not allowed"},
		{"upn as subject, allowed but unverified", config.ClaimMapping{Subject: "upn", EmailSubject: true}, map[string]any{"upn": "a@b.test", "email_verified": false}, "", "id token: email subject not verified"},
		{"mapped email claim as subject", config.ClaimMapping{Subject: "mail", Email: "mail"}, map[string]any{"mail": "a@b.test", "email_verified": true}, "", "id token: email-like subject claim not allowed"},
		{"email allowed but unverified", config.ClaimMapping{Subject: "email", EmailSubject: true}, map[string]any{"email_verified": false}, "", "id token: email subject not verified"},
		{"email allowed, verified as string", config.ClaimMapping{Subject: "email", EmailSubject: true}, map[string]any{"email_verified": "true"}, "alice@example.test", ""},
		{"email allowed and verified", config.ClaimMapping{Subject: "email", EmailSubject: true}, map[string]any{"email_verified": true}, "alice@example.test", ""},
		{"subject with a control character", config.ClaimMapping{Subject: "cid"}, map[string]any{"cid": "a\x00b"}, "", "id token: invalid subject"},
		{"subject too long", config.ClaimMapping{Subject: "cid"}, map[string]any{"cid": strings.Repeat("x", 256)}, "", "id token: invalid subject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(s *setup) { s.identity = func(c *config.Identity) { c.Claims = tc.mapping } })
			e.idp.OnIssue(func(is *oidctest.Issue) {
				for k, v := range tc.claims {
					is.Claims[k] = v
				}
			})
			id, err := e.redeem(t)
			if tc.reason != "" {
				requireRejected(t, err, tc.reason)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.subject, id.Subject)
		})
	}
}

func TestSubClaimBounds(t *testing.T) {
	for _, tc := range []struct{ name, sub string }{
		{"control character", "user\n42"},
		{"256 bytes", strings.Repeat("s", 256)},
		{"invalid UTF-8", "user\xff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.idp.OnIssue(func(is *oidctest.Issue) { is.Claims["sub"] = tc.sub })
			_, err := e.redeem(t)
			requireRejected(t, err, "id token: invalid sub")
		})
	}
	e := newEnv(t)
	e.idp.OnIssue(func(is *oidctest.Issue) { is.Claims["sub"] = strings.Repeat("s", 255) })
	_, err := e.redeem(t)
	require.NoError(t, err, "255 bytes is the OIDC maximum and allowed")
}

func TestNewTokenVerifierRefusesEmptyExtraIssuer(t *testing.T) {
	idp := oidctest.NewTest(t, oidctest.Config{})
	_, err := oidc.NewTokenVerifier(oidc.VerifierConfig{
		Issuer: idp.Issuer(), Audience: "c", MaxTokenAge: 1, ExtraIssuers: []string{""},
	}, standaloneKeys(t, idp))
	require.ErrorContains(t, err, "empty extra issuer")
}
