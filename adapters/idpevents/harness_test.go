package idpevents_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/idpevents"
	"github.com/stepup-bridge/stepup-bridge/adapters/oidc"
	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/httpapi"
	"github.com/stepup-bridge/stepup-bridge/bridge/memstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/telemetry/telemetrytest"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// Secrets of the harness: random-looking, at least 32 characters, and
// searched for in the logs at the end of every test.
const (
	oktaSecret    = "okta-hook-secret-3f9a1c0b7e5d2a8f4c6b"
	oktaSecretOld = "okta-hook-secret-old-91d2e7a4c5b3f8e0"
	kcSecret      = "keycloak-hmac-secret-5b8e2f1a9c7d3e6a"
	kcSecretOld   = "keycloak-hmac-secret-old-0a1b2c3d4e5f"
	hsSecret      = "auth0-action-secret-7c1e9b3a5d2f8e4b6a"
	hsSecretOld   = "auth0-action-secret-old-2e8d4c6a0b9f1e3d"
	oktaApp       = "0oaz9fj21WKqTeaqs1d6"
	publicURL     = "https://bridge.example"
	brandID       = "acme"
	hsIssuer      = "acme.eu.auth0.com"
)

// fakeClock is shared by the IdPs, the sources, the service and the store.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output from many goroutines.
type syncBuffer = telemetrytest.LogBuffer

// harness is one brand wired as in production: the real OIDC provider in
// front of a strict test OP, every login-event source with real keys and
// secrets, the service on the memory store, and the real HTTP router.
type harness struct {
	clock   *fakeClock
	store   *memstore.Store
	svc     *bridge.Service
	router  http.Handler
	idp     *oidctest.Provider // the brand's OIDC IdP
	partner *oidctest.Provider // a "jwt" issuer posting tokens it signs
	tenant  *oidctest.Provider // an Auth0 tenant (its JWK Set)
	oidc    *oidc.Provider
	sources map[string]idpevents.Source
	logs    *syncBuffer
	secrets []string // must never reach a log line
}

type harnessOpt func(*harnessCfg)

type harnessCfg struct {
	events      []config.LoginEvents
	beforeNew   func(h *harness)
	policy      func(*bridge.Policy)
	unknownKIDs time.Duration
}

func jwtAudience(name string) string { return publicURL + "/idp/" + brandID + "/" + name }

func newHarness(t *testing.T, opts ...harnessOpt) *harness {
	t.Helper()
	clock := &fakeClock{t: time.Now().Truncate(time.Second)}
	h := &harness{clock: clock, logs: &syncBuffer{}, sources: map[string]idpevents.Source{}}
	redirect := publicURL + "/callback/" + brandID
	h.idp = oidctest.NewTest(t, oidctest.Config{RedirectURIs: []string{redirect}, Now: clock.Now})
	h.partner = oidctest.NewTest(t, oidctest.Config{Now: clock.Now, TokenTTL: 5 * time.Minute})
	h.tenant = oidctest.NewTest(t, oidctest.Config{Now: clock.Now, IssuerPath: "/tenant"})

	hc := &harnessCfg{events: defaultEvents(h)}
	for _, o := range opts {
		o(hc)
	}
	if hc.beforeNew != nil {
		hc.beforeNew(h)
	}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := t.Context()
	var err error
	h.oidc, err = oidc.New(ctx, h.idp.Identity(), redirect, oidc.Options{Clock: clock, Logger: log})
	require.NoError(t, err)
	t.Cleanup(h.oidc.Close)

	ic := h.idp.Identity()
	ic.Name = "Acme login"
	srcs := map[string]bridge.LoginEventSource{}
	for _, lc := range hc.events {
		src, err := idpevents.New(ctx, lc, idpevents.Options{
			Logger: log, Clock: clock, Provider: ic.Name, Issuer: ic.Issuer,
			RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, UnknownKIDEvery: hc.unknownKIDs,
		})
		require.NoError(t, err, lc.ProviderName())
		t.Cleanup(src.Close)
		h.sources[lc.ProviderName()] = src
		srcs[lc.ProviderName()] = src
		for _, s := range lc.Secrets {
			h.secrets = append(h.secrets, s.Value)
		}
	}
	pol := bridge.Policy{
		LinkTTL: 10 * time.Minute, TxnTTL: 10 * time.Minute, Binding: bridge.BindingConfirmCode,
		CodeTTL: 5 * time.Minute, CodeLength: 6, CodeAttempts: 3, MaxLinks: 5,
		LinkMessage:   template.Must(template.New("l").Parse("{{.URL}}")),
		NotifyMessage: template.Must(template.New("n").Parse("{{.Name}}")),
		LoginWindow:   30 * time.Minute,
	}
	if hc.policy != nil {
		hc.policy(&pol)
	}
	h.store = memstore.New(memstore.Options{Clock: clock})
	h.svc, err = bridge.NewService(bridge.Options{
		Store: h.store, PublicURL: publicURL, Clock: clock, Logger: log,
		Brands: []*bridge.Brand{{ID: brandID, Platforms: map[string]bridge.Platform{}, Identity: h.oidc, Policy: pol, LoginEvents: srcs}},
	})
	require.NoError(t, err)
	h.router, err = httpapi.New(httpapi.Options{Service: h.svc, Logger: log, PublicURL: publicURL, Clock: clock, MaxBodyBytes: 1 << 20})
	require.NoError(t, err)
	h.secrets = append(h.secrets, h.idp.ClientSecret())
	t.Cleanup(func() {
		logs := h.logs.String()
		for _, s := range h.secrets {
			if strings.Contains(logs, s) {
				t.Errorf("a secret reached the logs")
			}
		}
	})
	return h
}

// defaultEvents: one source of each type (two for auth0: JWKS and HS256).
func defaultEvents(h *harness) []config.LoginEvents {
	def := func(lc config.LoginEvents) config.LoginEvents {
		lc.MaxEventAge = 10 * time.Minute
		lc.Leeway = 30 * time.Second
		lc.HTTPTimeout = 2 * time.Second
		if lc.Algorithms == nil {
			lc.Algorithms = []string{"RS256", "ES256"}
		}
		if lc.Claims.Subject == "" {
			lc.Claims = config.ClaimMapping{Subject: "sub", Name: "name", Email: "email"}
		}
		return lc
	}
	sec := func(vs ...string) []config.Secret {
		var out []config.Secret
		for _, v := range vs {
			out = append(out, config.Secret{Ref: "${TEST}", Value: v})
		}
		return out
	}
	return []config.LoginEvents{
		def(config.LoginEvents{Type: "okta", Secrets: sec(oktaSecret, oktaSecretOld), AppInstances: []string{oktaApp}}),
		def(config.LoginEvents{Type: "keycloak", Secrets: sec(kcSecret, kcSecretOld), Realm: "acme", ClientIDs: []string{"bridge"}}),
		def(config.LoginEvents{Type: "jwt", Issuer: h.partner.Issuer(), JWKSURI: h.partner.Issuer() + "/jwks", Audience: jwtAudience("jwt"), Provider: "Partner"}),
		def(config.LoginEvents{Type: "auth0", Issuer: h.tenant.Issuer(), JWKSURI: h.tenant.Issuer() + "/jwks", Audience: jwtAudience("auth0")}),
		def(config.LoginEvents{Type: "auth0", Name: "auth0-action", Issuer: hsIssuer, Secrets: sec(hsSecret, hsSecretOld)}),
	}
}

// post sends a login event through the real router.
func (h *harness) post(t *testing.T, provider string, body []byte, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/idp/"+brandID+"/"+provider, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.router.ServeHTTP(w, req)
	return w
}

func (h *harness) get(t *testing.T, provider string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/idp/"+brandID+"/"+provider, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.router.ServeHTTP(w, req)
	return w
}

// latest is the recorded login of subject, or nil.
func (h *harness) latest(t *testing.T, subject string) *bridge.LoginRecord {
	t.Helper()
	rec, err := h.store.LatestLogin(t.Context(), brandID, subject, h.clock.Now())
	if errors.Is(err, bridge.ErrNotFound) {
		return nil
	}
	require.NoError(t, err)
	return &rec
}

// --- payload builders, signed with real keys and secrets ---

func oktaHeader(secret string) http.Header {
	return http.Header{"Authorization": {secret}, "Content-Type": {"application/json"}, "Accept": {"application/json"}}
}

// oktaEvent is one LogEvent of a hook, shaped as in the Okta doc sample.
type oktaEvent struct {
	UUID, Type, Actor, Result, App string
	Published                      time.Time
}

func oktaBody(events ...oktaEvent) []byte {
	var evs []map[string]any
	for _, e := range events {
		targets := []map[string]any{{"id": "lae42mkdc9i9cbw3U1d6", "type": "AuthenticatorEnrollment"}}
		if e.App != "" {
			targets = append(targets, map[string]any{"id": e.App, "type": "AppInstance", "alternateId": "Acme"})
		}
		evs = append(evs, map[string]any{
			"uuid": e.UUID, "published": e.Published.UTC().Format("2006-01-02T15:04:05.000Z"), "eventType": e.Type,
			"version": "0", "severity": "INFO", "displayMessage": "User login to Okta",
			"actor":   map[string]any{"id": e.Actor, "type": "User", "alternateId": "alice@example.test", "displayName": "Alice Example"},
			"outcome": map[string]any{"result": e.Result, "reason": nil},
			"target":  targets,
		})
	}
	b, _ := json.Marshal(map[string]any{
		"eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
		"source": "https://acme.okta.example/api/v1/eventHooks/who7hphp39JoHLni81d7", "eventId": "85b60edb-4263-4e13-993b-818e26201052",
		"eventTime": time.Now().UTC().Format(time.RFC3339), "contentType": "application/json",
		"data": map[string]any{"events": evs},
	})
	return b
}

// keycloakBody is a p2-inc keycloak-events user event.
func keycloakBody(uid, typ, user, client string, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"uid": uid, "type": typ, "time": at.UnixMilli(), "realmId": "acme",
		"authDetails": map[string]any{"realmId": "acme", "clientId": client, "userId": user, "ipAddress": "192.0.2.1", "username": "alice", "sessionId": "s-1"},
		"details":     map[string]any{"auth_method": "openid-connect", "redirect_uri": "https://app.example/cb"},
	})
	return b
}

func keycloakSig(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func keycloakHeader(secret string, body []byte) http.Header {
	return http.Header{"X-Keycloak-Signature": {keycloakSig(secret, body)}, "Content-Type": {"application/json"}}
}

// partnerToken is a token the partner signs for the bridge's jwt source.
func (h *harness) partnerToken(t *testing.T, sub string, mod func(jwt.MapClaims)) string {
	t.Helper()
	c := h.partner.Claims(oidctest.User{Subject: sub, Name: "Pat Partner", Email: sub + "@partner.test", EmailVerified: true}, "")
	c["aud"] = jwtAudience("jwt")
	delete(c, "azp")
	if mod != nil {
		mod(c)
	}
	raw, err := h.partner.Sign(c, "")
	require.NoError(t, err)
	return raw
}

// hsToken is an Action-encoded token (HS256 with the shared secret).
func (h *harness) hsToken(t *testing.T, secret, sub string, mod func(jwt.MapClaims)) string {
	t.Helper()
	now := h.clock.Now()
	c := jwt.MapClaims{"sub": sub, "iss": hsIssuer, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "ip": "192.0.2.1", "continue_uri": "https://acme.eu.auth0.com/continue"}
	if mod != nil {
		mod(c)
	}
	raw, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	require.NoError(t, err)
	return raw
}

func tokenBody(raw string) []byte {
	b, _ := json.Marshal(map[string]string{"token": raw})
	return b
}

// --- the OIDC login flow, at the service, for the ID-token rows ---

// flow is a login under way: the conversation, its browser cookie, and
// the IdP's redirect back (code, state, iss).
type flow struct {
	key    bridge.Key
	cookie string
	cb     bridge.Callback
	nonce  string
}

// startLogin creates a conversation, issues its link, starts the login and
// logs in at the IdP (whose OnIssue hook shapes the ID token later, at the
// token endpoint).
func (h *harness) startLogin(t *testing.T, conv string) flow {
	t.Helper()
	ctx := t.Context()
	key := bridge.Key{Brand: brandID, Conversation: conv}
	err := h.store.Observe(ctx, "started-"+conv, bridge.Observation{Key: key, Platform: "standard", Consumer: "anon-" + conv, Channel: "web", At: h.clock.Now()})
	require.NoError(t, err)
	link, err := h.svc.RequestLink(ctx, brandID, conv, false)
	require.NoError(t, err)
	u, err := url.Parse(link.URL)
	require.NoError(t, err)
	ticket := u.Path[strings.LastIndex(u.Path, "/")+1:]
	start, err := h.svc.StartLogin(ctx, brandID, ticket)
	require.NoError(t, err)
	au, err := url.Parse(start.AuthURL)
	require.NoError(t, err)
	loc, err := h.idp.Login(start.AuthURL)
	require.NoError(t, err)
	q := loc.Query()
	require.NotEmpty(t, q.Get("code"), "authorize error %q", q.Get("error"))
	return flow{key: key, cookie: start.TxnCookie, nonce: au.Query().Get("nonce"),
		cb: bridge.Callback{State: q.Get("state"), Code: q.Get("code"), Iss: q.Get("iss")}}
}

func (h *harness) session(t *testing.T, key bridge.Key) bridge.Session {
	t.Helper()
	s, err := h.store.Get(t.Context(), key)
	require.NoError(t, err)
	return s
}

// finishRejected completes the flow and asserts the rejection and that the
// conversation and the recorded logins are exactly as before.
func (h *harness) finishRejected(t *testing.T, f flow, target error) {
	t.Helper()
	before := h.session(t, f.key)
	_, err := h.svc.FinishLogin(t.Context(), brandID, f.cookie, f.cb)
	require.Error(t, err)
	require.ErrorIs(t, err, target)
	after := h.session(t, f.key)
	assert.Equal(t, before, after, "the conversation must not change")
	assert.NotEqual(t, bridge.StateSteppedUp, after.State)
	assert.Nil(t, after.Pending)
	assert.Nil(t, after.Identity)
	h.assertNoLogins(t)
}

// assertNoLogins: nothing recorded for any subject the tests use, and no
// outbox entry written.
func (h *harness) assertNoLogins(t *testing.T) {
	t.Helper()
	for _, s := range []string{"user-42", "evil", "admin", "victim", "00uz9fj5aT69fHVro1d6", "kc-user-1", "partner-7", "auth0|123456"} {
		assert.Nil(t, h.latest(t, s), "no login recorded for %s", s)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	ds, _ := h.store.Claim(ctx, "test", 10, 0)
	assert.Empty(t, ds, "no outbox entry")
}

// rejectedEvent posts body and asserts the status and that nothing was
// recorded.
func (h *harness) rejectedEvent(t *testing.T, provider string, body []byte, header http.Header, status int) {
	t.Helper()
	w := h.post(t, provider, body, header)
	require.Equal(t, status, w.Code, "body: %s", w.Body.String())
	var e struct {
		Error string `json:"error"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e), "a JSON error body")
	require.NotEmpty(t, e.Error)
	for _, s := range h.secrets {
		require.NotContains(t, w.Body.String(), s)
	}
	h.assertNoLogins(t)
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return string(b)
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
