package bridge_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/memstore"
)

// issuerPlatform is a platform that serves a token endpoint answering what
// the test set.
type issuerPlatform struct {
	eventsPlatform
	res  bridge.TokenResult
	jwks []byte
	idp  bridge.CodeRedeemer
}

func (p *issuerPlatform) IssueToken(_ context.Context, _ *http.Request, idp bridge.CodeRedeemer) bridge.TokenResult {
	p.idp = idp
	return p.res
}
func (p *issuerPlatform) JWKS() []byte { return p.jwks }

// redeemingIdP is an identity provider that can redeem codes.
type redeemingIdP struct{ bridge.IdentityProvider }

func (redeemingIdP) RedeemCode(context.Context, string, string) (bridge.Identity, error) {
	return bridge.Identity{}, nil
}

// failingLogins is a store whose RecordLogin fails.
type failingLogins struct{ *memstore.Store }

func (failingLogins) RecordLogin(context.Context, bridge.LoginRecord, time.Time) error {
	return errors.New("store down")
}

func tokenService(t *testing.T, store bridge.Store, p bridge.Platform, idp bridge.IdentityProvider) *bridge.Service {
	t.Helper()
	svc, err := bridge.NewService(bridge.Options{Store: store, Brands: []*bridge.Brand{{
		ID: "acme", Platforms: map[string]bridge.Platform{"lp": p}, Identity: idp,
		Policy: bridge.Policy{NotifyMessage: template.Must(template.New("n").Parse("x")), LoginWindow: time.Minute},
	}}})
	require.NoError(t, err)
	return svc
}

func serve(svc *bridge.Service, brand string) (int, http.Header, string) {
	w := httptest.NewRecorder()
	svc.ServeToken(w, httptest.NewRequest(http.MethodPost, "/token/"+brand, strings.NewReader("grant_type=authorization_code")), brand)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, w.Header(), string(b)
}

func TestServeToken(t *testing.T) {
	id := bridge.Identity{Provider: "Acme", Issuer: "https://idp", Subject: "user-1"}
	ok := bridge.TokenResult{Status: http.StatusOK, Body: []byte(`{"id_token":"x"}`), Login: &id, Reason: "issued"}

	t.Run("the login is recorded before the token leaves", func(t *testing.T) {
		store := memstore.New(memstore.Options{})
		p := &issuerPlatform{res: ok}
		svc := tokenService(t, store, p, redeemingIdP{})
		code, h, body := serve(svc, "acme")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, `{"id_token":"x"}`, body)
		assert.Equal(t, "no-store", h.Get("Cache-Control"))
		assert.NotNil(t, p.idp, "the brand's IdP is handed to the adapter")
		rec, err := store.LatestLogin(context.Background(), "acme", "user-1", time.Now())
		require.NoError(t, err)
		assert.True(t, rec.Verified)
		assert.Equal(t, "token_endpoint", rec.Source)
	})
	t.Run("store down: no token", func(t *testing.T) {
		svc := tokenService(t, failingLogins{memstore.New(memstore.Options{})}, &issuerPlatform{res: ok}, redeemingIdP{})
		code, h, body := serve(svc, "acme")
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.Equal(t, "5", h.Get("Retry-After"))
		assert.JSONEq(t, `{"error":"temporarily_unavailable"}`, body)
		assert.NotContains(t, body, "id_token")
	})
	t.Run("refusal passes through, nothing recorded", func(t *testing.T) {
		store := memstore.New(memstore.Options{})
		svc := tokenService(t, store, &issuerPlatform{res: bridge.TokenResult{Status: 400, Body: []byte(`{"error":"invalid_code"}`), Reason: "x"}}, redeemingIdP{})
		code, _, body := serve(svc, "acme")
		assert.Equal(t, http.StatusBadRequest, code)
		assert.JSONEq(t, `{"error":"invalid_code"}`, body)
		_, err := store.LatestLogin(context.Background(), "acme", "user-1", time.Now())
		assert.ErrorIs(t, err, bridge.ErrNotFound)
	})
	t.Run("an adapter without a status is a 500, not a panic", func(t *testing.T) {
		svc := tokenService(t, memstore.New(memstore.Options{}), &issuerPlatform{}, redeemingIdP{})
		code, _, _ := serve(svc, "acme")
		assert.Equal(t, http.StatusInternalServerError, code)
	})
	t.Run("no token endpoint", func(t *testing.T) {
		svc := tokenService(t, memstore.New(memstore.Options{}), &eventsPlatform{}, redeemingIdP{})
		code, _, _ := serve(svc, "acme")
		assert.Equal(t, http.StatusNotFound, code)
		code, _, _ = serve(svc, "nobody")
		assert.Equal(t, http.StatusNotFound, code)
		// An IdP that cannot redeem codes.
		svc = tokenService(t, memstore.New(memstore.Options{}), &issuerPlatform{res: ok}, nil)
		code, _, _ = serve(svc, "acme")
		assert.Equal(t, http.StatusNotFound, code)
	})
}

func TestServeJWKS(t *testing.T) {
	svc := tokenService(t, memstore.New(memstore.Options{}), &issuerPlatform{jwks: []byte(`{"keys":[]}`)}, redeemingIdP{})
	w := httptest.NewRecorder()
	svc.ServeJWKS(w, httptest.NewRequest(http.MethodGet, "/jwks/acme", nil), "acme")
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, `{"keys":[]}`, w.Body.String())
	assert.Contains(t, w.Header().Get("Cache-Control"), "max-age")

	off := tokenService(t, memstore.New(memstore.Options{}), &issuerPlatform{}, redeemingIdP{})
	w = httptest.NewRecorder()
	off.ServeJWKS(w, httptest.NewRequest(http.MethodGet, "/jwks/acme", nil), "acme")
	assert.Equal(t, http.StatusNotFound, w.Code, "connector off")
}
