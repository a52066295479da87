package liveperson

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

// redeemer stands in for the IdP: it records what it was asked.
type redeemer struct {
	id             bridge.Identity
	err            error
	code, redirect string
	calls          int
}

func (r *redeemer) RedeemCode(_ context.Context, code, redirectURI string) (bridge.Identity, error) {
	r.calls++
	r.code, r.redirect = code, redirectURI
	return r.id, r.err
}

func pemOf(t *testing.T, typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func TestKeys(t *testing.T) {
	k2048, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	k1024, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(k2048)
	ec8, _ := x509.MarshalPKCS8PrivateKey(ec)
	pub, _ := x509.MarshalPKIXPublicKey(&k2048.PublicKey)

	tests := []struct {
		name, pem, want string
	}{
		{"PKCS #1", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k2048)), ""},
		{"PKCS #8", pemOf(t, "PRIVATE KEY", pkcs8), ""},
		{"1024 bits", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k1024)), "RSA key of 1024 bits; at least 2048 required"},
		{"EC key", pemOf(t, "PRIVATE KEY", ec8), "not an RSA key (LivePerson verifies RS256)"},
		{"public key", pemOf(t, "PUBLIC KEY", pub), `PEM block "PUBLIC KEY" is not a private key`},
		{"not PEM", "whsec_abc", "not PEM"},
		{"broken DER", pemOf(t, "RSA PRIVATE KEY", []byte("garbage")), "not a valid PKCS #1 RSA key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			priv, err := parseRSAKey([]byte(tc.pem))
			if tc.want != "" {
				require.Error(t, err)
				assert.Equal(t, tc.want, err.Error())
				return
			}
			require.NoError(t, err)
			assert.True(t, priv.Equal(k2048))
		})
	}

	// The kid defaults to the RFC 7638 thumbprint (the RFC's own example key).
	n, _ := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	rfcKey := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	assert.Equal(t, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", thumbprint(rfcKey))

	ks, err := newKeySet(config.LivePersonConnector{SigningKeys: []config.LivePersonKey{
		{ID: "new", PrivateKey: config.Secret{Value: pemOf(t, "PRIVATE KEY", pkcs8)}},
		{PrivateKey: config.Secret{Value: pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k2048))}},
	}})
	require.NoError(t, err)
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(ks.jwks, &set))
	require.Len(t, set.Keys, 2)
	assert.Equal(t, "new", set.Keys[0]["kid"])
	assert.Equal(t, thumbprint(&k2048.PublicKey), set.Keys[1]["kid"])
	for _, k := range set.Keys {
		assert.Equal(t, "RSA", k["kty"])
		assert.Equal(t, "sig", k["use"])
		assert.Equal(t, "RS256", k["alg"])
		assert.Equal(t, "AQAB", k["e"])
		assert.NotContains(t, k, "d", "never a private parameter")
	}

	_, err = newKeySet(config.LivePersonConnector{})
	assert.Error(t, err, "no keys and no development key")
	dev, err := newKeySet(config.LivePersonConnector{DevGenerateKey: true})
	require.NoError(t, err)
	assert.Len(t, dev.keys, 1)
}

func newIssuer(t *testing.T) (*tokenIssuer, *rsa.PrivateKey) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	cfg := config.LivePersonConnector{
		Enabled: true, ClientID: "lp client", ClientSecret: config.Secret{Value: "p%ss:word"}, Issuer: "https://www.acme.example", TokenTTL: time.Hour,
		SigningKeys: []config.LivePersonKey{{ID: "k1", PrivateKey: config.Secret{Value: pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k))}}},
		Claims:      map[string]string{"email": "email", "given_name": "given_name", "phone_number": "phone"},
		SDEs:        map[string]string{"personal.firstname": "given_name", "personal.phone": "phone", "ctmrinfo.userName": "username", "ctmrinfo.ctype": "missing"},
	}
	ks, err := newKeySet(cfg)
	require.NoError(t, err)
	return &tokenIssuer{cfg: cfg, secret: []byte(cfg.ClientSecret.Value), keys: ks, clock: fixedClock(time.Unix(1764147600, 0))}, k
}

func tokenReq(form url.Values, basic string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/token/acme", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	if basic != "" {
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(basic)))
	}
	return r
}

func TestIssueToken(t *testing.T) {
	ti, key := newIssuer(t)
	idp := &redeemer{id: bridge.Identity{
		Provider: "Acme login", Issuer: "https://login.acme.example", Subject: "user-42", Name: "Zoë Ünal", Email: "zoe@example.test",
		EmailVerified: true, Claims: map[string]string{"given_name": "Zoë", "phone": "+44 20 7946 0000", "username": "zoe"},
	}}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {"c0de"}, "redirect_uri": {"https://liveperson.net"}}

	// Both Basic spellings: plain (LivePerson's docs) and form-encoded (RFC 6749).
	for _, basic := range []string{"lp client:p%ss:word", url.QueryEscape("lp client") + ":" + url.QueryEscape("p%ss:word")} {
		res := ti.IssueToken(context.Background(), tokenReq(form, basic), idp)
		require.Equal(t, http.StatusOK, res.Status, string(res.Body))
		require.NotNil(t, res.Login)
		assert.Equal(t, "user-42", res.Login.Subject)
	}
	assert.Equal(t, "c0de", idp.code)
	assert.Equal(t, "https://liveperson.net", idp.redirect, "no redirect_uri configured: LivePerson's is used")

	res := ti.IssueToken(context.Background(), tokenReq(form, "lp client:p%ss:word"), idp)
	var body map[string]string
	require.NoError(t, json.Unmarshal(res.Body, &body))
	assert.Equal(t, "Bearer", body["token_type"])
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(body["id_token"], claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(ti.clock.Now))
	require.NoError(t, err)
	assert.Equal(t, "k1", tok.Header["kid"])
	raw, _ := json.Marshal(claims)
	assert.JSONEq(t, `{
		"iss":"https://www.acme.example","sub":"user-42","iat":1764147600,"exp":1764151200,
		"email":"zoe@example.test","given_name":"Zoë","phone_number":"+44 20 7946 0000",
		"lp_sdes":[{"type":"ctmrinfo","info":{"customerId":"user-42","userName":"zoe"}},
		           {"type":"personal","personal":{"firstname":"Zoë","contacts":[{"phone":"+44 20 7946 0000"}]}}]}`, string(raw))

	// An address the IdP did not verify is not passed on.
	idp.id.EmailVerified = false
	res = ti.IssueToken(context.Background(), tokenReq(form, "lp client:p%ss:word"), idp)
	require.NoError(t, json.Unmarshal(res.Body, &body))
	claims = jwt.MapClaims{}
	_, _, err = jwt.NewParser().ParseUnverified(body["id_token"], claims)
	require.NoError(t, err)
	assert.NotContains(t, claims, "email")

	// A configured redirect_uri wins over the one LivePerson sends.
	ti.cfg.RedirectURI = "https://www.acme.example/lp-login"
	ti.IssueToken(context.Background(), tokenReq(form, "lp client:p%ss:word"), idp)
	assert.Equal(t, "https://www.acme.example/lp-login", idp.redirect)

	// Refusals never reach the IdP.
	calls := idp.calls
	for _, basic := range []string{"", "lp client:wrong", "other:p%ss:word", "no-colon"} {
		res := ti.IssueToken(context.Background(), tokenReq(form, basic), idp)
		assert.Equal(t, http.StatusUnauthorized, res.Status)
		assert.JSONEq(t, `{"error":"unauthorized_client"}`, string(res.Body))
		assert.Nil(t, res.Login)
	}
	get := httptest.NewRequest(http.MethodGet, "/token/acme", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, ti.IssueToken(context.Background(), get, idp).Status)
	assert.Equal(t, calls, idp.calls)

	// The IdP refusing the code: LivePerson's invalid_code.
	idp.err = fmt.Errorf("%w: token endpoint: invalid_grant (status 400)", bridge.ErrLoginRejected)
	res = ti.IssueToken(context.Background(), tokenReq(form, "lp client:p%ss:word"), idp)
	assert.Equal(t, http.StatusBadRequest, res.Status)
	assert.JSONEq(t, `{"error":"invalid_code"}`, string(res.Body))
	assert.Nil(t, res.Login)
}
