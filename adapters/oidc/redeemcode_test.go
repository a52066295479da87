package oidc_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc"
)

// pageRedirect is the brand page's redirect URI in LivePerson's code flow:
// the page, not the bridge, made the authorization request.
const pageRedirect = "https://www.acme.example/lp-login"

// pageCode logs a user in as the brand's page does: no PKCE, its own
// redirect URI, a nonce the bridge never sees.
func pageCode(t *testing.T, e *env, withPKCE bool) string {
	t.Helper()
	q := url.Values{"response_type": {"code"}, "client_id": {e.idp.ClientID()}, "redirect_uri": {pageRedirect},
		"scope": {"openid email"}, "state": {"s"}, "nonce": {"page-nonce"}}
	if withPKCE {
		q.Set("code_challenge", oidc.Challenge(oidc.NewVerifier()))
		q.Set("code_challenge_method", "S256")
	}
	loc, err := e.idp.Login(e.idp.Issuer() + "/authorize?" + q.Encode())
	require.NoError(t, err)
	require.NotEmpty(t, loc.Query().Get("code"), loc.Query().Get("error"))
	return loc.Query().Get("code")
}

func TestRedeemCode(t *testing.T) {
	e := newEnv(t, func(s *setup) {
		s.idp.PKCEOptional = true
		s.idp.RedirectURIs = append(s.idp.RedirectURIs, pageRedirect)
	})
	e.waitReady(t)
	var sawVerifier bool
	e.idp.OnToken(func(w http.ResponseWriter, r *http.Request) bool {
		_ = r.ParseForm()
		sawVerifier = sawVerifier || r.PostForm.Has("code_verifier")
		return false
	})

	id, err := e.p.RedeemCode(e.ctx, pageCode(t, e, false), pageRedirect)
	require.NoError(t, err)
	assert.Equal(t, "user-42", id.Subject)
	assert.Equal(t, []string{"pwd", "otp"}, id.AMR)
	assert.False(t, sawVerifier, "no PKCE verifier is sent: the bridge never had one")

	// The redirect URI must be the page's, exactly.
	_, err = e.p.RedeemCode(e.ctx, pageCode(t, e, false), pageRedirect+"/other")
	requireRejected(t, err, "token endpoint: invalid_grant (status 400)")
	// A code bound to a PKCE challenge cannot be redeemed without its verifier.
	_, err = e.p.RedeemCode(e.ctx, pageCode(t, e, true), pageRedirect)
	requireRejected(t, err, "token endpoint: invalid_grant (status 400)")
	// Codes are single use.
	c := pageCode(t, e, false)
	_, err = e.p.RedeemCode(e.ctx, c, pageRedirect)
	require.NoError(t, err)
	_, err = e.p.RedeemCode(e.ctx, c, pageRedirect)
	requireRejected(t, err, "token endpoint: invalid_grant (status 400)")

	_, err = e.p.RedeemCode(e.ctx, "", pageRedirect)
	requireRejected(t, err, "code missing")
	_, err = e.p.RedeemCode(e.ctx, "x", "not a url")
	requireRejected(t, err, "redirect uri invalid")
}
