package oidc_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

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

// FuzzMapIdentity feeds arbitrary claim sets (as the JSON payload of a
// verified token) through every subject policy: no panic, and a mapped
// identity always has a bounded, printable subject and never an email-like
// subject unless allowed and verified.
func FuzzMapIdentity(f *testing.F) {
	f.Add([]byte(`{"iss":"https://login.microsoftonline.com/t/v2.0","sub":"s","oid":"o","tid":"t"}`))
	f.Add([]byte(`{"sub":"s","email":"a@b.test","email_verified":"true","upn":"a@b.test"}`))
	f.Add([]byte(`{"sub":12345678901234567890,"email_verified":false}`))
	f.Add([]byte(`{"sub":"a\u0000b","amr":"pwd","auth_time":1e300}`))
	mappings := []config.ClaimMapping{
		{},
		{Subject: "oid", Tenant: "tid"},
		{Subject: "email"},
		{Subject: "email", EmailSubject: true},
		{Subject: "upn", EmailSubject: true, Extra: map[string]string{"customer_id": "cid"}},
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var claims map[string]any
		dec := json.NewDecoder(bytes.NewReader(payload))
		dec.UseNumber()
		if dec.Decode(&claims) != nil {
			return
		}
		for _, m := range mappings {
			id, err := oidc.MapIdentity(claims, m, "p", time.Unix(0, 0))
			if err != nil {
				if oidc.Reason(err) == "" {
					t.Fatalf("error without reason: %v", err)
				}
				continue
			}
			if id.Subject == "" || len(id.Subject) > 255 || strings.ContainsFunc(id.Subject, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("bad subject %q", id.Subject)
			}
			if (m.Subject == "email" || m.Subject == "upn") && (!m.EmailSubject || !verifiedEmail(claims)) {
				t.Fatalf("email-like subject accepted: %+v %v", m, claims)
			}
		}
	})
}

func verifiedEmail(c map[string]any) bool {
	switch v := c["email_verified"].(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}
