package liveperson_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson"
	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson/lptest"
	"github.com/stepup-bridge/stepup-bridge/adapters/oidc"
	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/adapters/outbound"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/httpapi"
	"github.com/stepup-bridge/stepup-bridge/bridge/memstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore/redistest"
	"github.com/stepup-bridge/stepup-bridge/bridge/telemetry/telemetrytest"
	"github.com/stepup-bridge/stepup-bridge/config"
)

const (
	pageRedirect    = "https://www.acme.example/lp-login"
	connectorID     = "lp-connector"
	connectorSecret = "connector-secret-9f8e7d6c5b4a"
	tokenIssuerURL  = "https://www.acme.example"
	authedSkill     = "4242"
)

// harness is the whole native step-up: the bridge (service, memory store,
// HTTP API) with a LivePerson adapter, a fake LivePerson and a strict test
// IdP that lets the brand's page redeem codes without PKCE.
type harness struct {
	t      *testing.T
	lp     *lptest.Fake
	idp    *oidctest.Provider
	svc    *bridge.Service
	bridge *httptest.Server
	kids   []string
	rec    *recorder
	codes  []string
}

// syncBuffer collects log output from many goroutines.
type syncBuffer = telemetrytest.LogBuffer

// recorder counts the service's event outcomes (the metrics' source).
type recorder struct {
	mu       sync.Mutex
	outcomes map[string]int
}

func (r *recorder) Event(_, _ string, _ bridge.EventKind, outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes[outcome]++
}
func (r *recorder) count(outcome string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outcomes[outcome]
}
func (*recorder) LinkIssued(string, string)                      {}
func (*recorder) Login(string, string)                           {}
func (*recorder) Code(string, bridge.CodeResult)                 {}
func (*recorder) SteppedUp(string, string)                       {}
func (*recorder) Delivery(string, string, bridge.Effect, string) {}

func rsaPEM(t *testing.T) (string, *rsa.PrivateKey) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), k
}

func newHarness(t *testing.T, skill string, stores ...bridge.Store) *harness {
	t.Helper()
	return newHarnessWith(t, skill, harnessOpts{}, stores...)
}

// harnessOpts vary the harness: the fake's account, the platform config.
type harnessOpts struct {
	lp       lptest.Config
	platform func(*config.LivePersonPlatform)
}

func newHarnessWith(t *testing.T, skill string, o harnessOpts, stores ...bridge.Store) *harness {
	t.Helper()
	var store bridge.Store = memstore.New(memstore.Options{})
	if len(stores) > 0 {
		store = stores[0]
	}
	h := &harness{t: t, rec: &recorder{outcomes: map[string]int{}}}
	h.lp = lptest.NewTest(t, o.lp)
	// The brand's page (LivePerson's code flow) and the bridge's own
	// callback (bridge-driven login) are both registered at the IdP.
	h.idp = oidctest.NewTest(t, oidctest.Config{PKCEOptional: true, RedirectURIs: []string{pageRedirect, "https://bridge.example/callback/acme"}})

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ic := h.idp.Identity()
	ic.Name = "Acme login"
	ic.Claims = config.ClaimMapping{Subject: "sub"}
	provider, err := oidc.New(ctx, ic, "https://bridge.example/callback/acme", oidc.Options{HTTPClient: h.idp.Client()})
	require.NoError(t, err)
	t.Cleanup(provider.Close)

	// Two keys: the first signs, both are published (a rotation in progress).
	pem1, _ := rsaPEM(t)
	pem2, _ := rsaPEM(t)
	cfg := platformConfig(h.lp)
	cfg.Connector = config.LivePersonConnector{
		Enabled: true, ClientID: connectorID, ClientSecret: config.Secret{Ref: "${C}", Value: connectorSecret},
		Issuer: tokenIssuerURL, TokenTTL: time.Hour,
		SigningKeys: []config.LivePersonKey{{ID: "acme-2026-11", PrivateKey: config.Secret{Ref: "file:/k1", Value: pem1}}, {PrivateKey: config.Secret{Ref: "file:/k2", Value: pem2}}},
		SDEs:        map[string]string{"personal.firstname": "name", "personal.email": "email"},
	}
	if o.platform != nil {
		o.platform(&cfg)
	}
	// Everything the bridge logs, at debug level, must be free of secrets,
	// tokens, codes and e-mail addresses.
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		out := logs.String()
		assert.NotEmpty(t, out)
		for _, secret := range []string{connectorSecret, h.lp.Config().AppSecret, h.lp.Config().Password, h.lp.Config().ConnectorSecret, h.idp.ClientSecret(), "@example.test"} {
			assert.NotContains(t, out, secret, "logs leak")
		}
		// A compact JWS (header.payload.); a bare "eyJ" also occurs in random ids.
		assert.NotRegexp(t, `eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.`, out, "logs leak a JWT")
		for _, code := range h.codes {
			assert.NotContains(t, out, code, "logs leak an authorization code")
		}
	})
	a, err := liveperson.New(cfg, liveperson.Options{
		Outbound:  outbound.Options{Transport: h.lp.Client().Transport, RetryMax: -1, Logger: logger},
		TLSConfig: h.lp.TLSConfig(),
		Logger:    logger,
	})
	require.NoError(t, err)

	note := template.Must(template.New("n").Parse("Step-up: {{.Name}} ({{.Subject}}) verified by {{.Provider}} with {{.AMRText}} at {{.VerifiedAt}}"))
	link := template.Must(template.New("l").Parse("{{.URL}}"))
	h.svc, err = bridge.NewService(bridge.Options{
		Store: store,
		Brands: []*bridge.Brand{{
			ID: "acme", Platforms: map[string]bridge.Platform{"liveperson": a}, Identity: provider,
			Policy: bridge.Policy{
				LinkTTL: 10 * time.Minute, TxnTTL: 10 * time.Minute, Binding: bridge.BindingConfirmCode, CodeTTL: 5 * time.Minute,
				CodeLength: 6, CodeAttempts: 3, MaxLinks: 3, LinkMessage: link, NotifyAgents: true, NotifyMessage: note, AgentCommand: "/verify",
				Skill: skill, LoginWindow: 30 * time.Minute,
			},
		}},
		PublicURL: "https://bridge.example",
		Recorder:  h.rec,
		Logger:    logger,
	})
	require.NoError(t, err)
	router, err := httpapi.New(httpapi.Options{Service: h.svc, PublicURL: "https://bridge.example", Logger: logger})
	require.NoError(t, err)
	h.bridge = httptest.NewServer(router)
	t.Cleanup(h.bridge.Close)

	wctx, wcancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.svc.RunWorkers(wctx, bridge.DeliveryPolicy{Workers: 1, MaxAttempts: 5, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, CallTimeout: 5 * time.Second}, "test")
	}()
	t.Cleanup(func() { wcancel(); wg.Wait() })
	return h
}

// post sends a signed LivePerson webhook (header tweaks applied after signing).
func (h *harness) post(body string, tweak func(http.Header)) (int, map[string]any) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.bridge.URL+"/webhooks/acme/liveperson", strings.NewReader(body))
	require.NoError(h.t, err)
	req.Header = h.lp.Headers(h.lp.Sign([]byte(body)))
	if tweak != nil {
		tweak(req.Header)
	}
	return do(h.t, req)
}

func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out), "body %s", raw)
	}
	return resp.StatusCode, out
}

// pageLogin is the brand's page logging the consumer in at the IdP (no
// PKCE: LivePerson cannot carry a verifier) and handing LivePerson the code.
func (h *harness) pageLogin(u oidctest.User) string {
	h.t.Helper()
	h.idp.QueueUser(u)
	q := url.Values{"response_type": {"code"}, "client_id": {h.idp.ClientID()}, "redirect_uri": {pageRedirect}, "scope": {"openid profile email"}, "state": {"page-state"}}
	loc, err := h.idp.Login(h.idp.Issuer() + "/authorize?" + q.Encode())
	require.NoError(h.t, err)
	code := loc.Query().Get("code")
	require.NotEmpty(h.t, code)
	h.codes = append(h.codes, code)
	return code
}

// token is LivePerson's service calling the bridge's token endpoint.
func (h *harness) token(id, secret, code string) (int, map[string]any) {
	h.t.Helper()
	return do(h.t, lptest.TokenRequest(h.bridge.URL+"/token/acme", id, secret, code, pageRedirect))
}

// verifyIDToken checks the minted id_token against /jwks/acme as
// LivePerson does: RS256 by a published key, iss, exp, iat.
func (h *harness) verifyIDToken(raw string) jwt.MapClaims {
	h.t.Helper()
	resp, err := http.Get(h.bridge.URL + "/jwks/acme")
	require.NoError(h.t, err)
	defer resp.Body.Close()
	require.Equal(h.t, http.StatusOK, resp.StatusCode)
	var set struct {
		Keys []struct{ Kty, Use, Alg, Kid, N, E string }
	}
	require.NoError(h.t, json.NewDecoder(resp.Body).Decode(&set))
	require.Len(h.t, set.Keys, 2, "both keys of the rotation are published")
	keys := map[string]*rsa.PublicKey{}
	h.kids = nil
	for _, k := range set.Keys {
		require.Equal(h.t, "RSA", k.Kty)
		require.Equal(h.t, "RS256", k.Alg)
		n, err := base64.RawURLEncoding.DecodeString(k.N)
		require.NoError(h.t, err)
		e, err := base64.RawURLEncoding.DecodeString(k.E)
		require.NoError(h.t, err)
		keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		h.kids = append(h.kids, k.Kid)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return nil, errors.New("unknown kid")
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(tokenIssuerURL), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	require.NoError(h.t, err)
	return claims
}

func (h *harness) status(conv string) (bridge.Session, error) {
	return h.svc.Status(context.Background(), "acme", conv)
}

func msgText(conv, consumer, role string, seq int, text string) string {
	return `{"kind":"notification","body":{"changes":[{"sequence":` + itoa(int64(seq)) + `,"originatorId":"` + consumer + `","originatorMetadata":{"id":"` + consumer + `","role":"` + role +
		`"},"serverTimestamp":1700000001000,"event":{"type":"ContentEvent","message":"` + text + `","contentType":"text/plain"},"conversationId":"` + conv + `","dialogId":"` + conv +
		`","messageAudience":"ALL"}]},"type":"ms.MessagingEventNotification"}`
}

func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, 10*time.Millisecond, msg)
}

// stores are the state stores the end-to-end test runs on: memory, and the
// Redis deployments of redistest (standalone always; Cluster when set up).
func stores() []struct {
	name string
	make func(t *testing.T) bridge.Store
} {
	out := []struct {
		name string
		make func(t *testing.T) bridge.Store
	}{{"memory", func(*testing.T) bridge.Store { return memstore.New(memstore.Options{}) }}}
	for _, tg := range redistest.Targets() {
		out = append(out, struct {
			name string
			make func(t *testing.T) bridge.Store
		}{"redis-" + tg.Name, func(t *testing.T) bridge.Store {
			if tg.Skip != "" {
				t.Skip(tg.Skip)
			}
			return redistest.Store(t, redistest.Client(t, tg.Addrs...), redisstore.Options{})
		}})
	}
	return out
}

func TestEndToEndNativeStepUp(t *testing.T) {
	for _, st := range stores() {
		for _, skill := range []string{authedSkill, ""} {
			name := st.name + "/with skill transfer"
			if skill == "" {
				name = st.name + "/without skill"
			}
			t.Run(name, func(t *testing.T) {
				testNativeStepUp(t, newHarness(t, skill, st.make(t)), skill)
			})
		}
	}
}

func testNativeStepUp(t *testing.T, h *harness, skill string) {
	const conv, anon, authed = "5491244f-e462-4c63-bf4e-faf4b2d3e7b5", "ade26082b1185839d17e0794924c1a0005cf5663e7c35e38f80dd8552a1a96e5", "f00dcafe0000000000000000000000000000000000000000000000000000beef"
	h.lp.OpenConversation(conv)

	// The unauthenticated consumer starts; messages flow (one with emoji).
	code, out := h.post(cqm(conv, anon, "OPEN", 1528371161882), nil)
	require.Equal(t, http.StatusOK, code, out)
	code, _ = h.post(msgText(conv, anon, "CONSUMER", 0, "Hallo 👋, ich möchte mein Konto prüfen"), nil)
	require.Equal(t, http.StatusOK, code)
	code, _ = h.post(msgText(conv, "29c3019d-fe0b-5200-afe8-737abfeae4b4", "ASSIGNED_AGENT", 1, "Please log in"), nil)
	require.Equal(t, http.StatusOK, code)
	sess, err := h.status(conv)
	require.NoError(t, err)
	assert.Equal(t, bridge.StateAnonymous, sess.State)
	assert.Equal(t, anon, sess.Consumer)

	// The consumer logs in on the brand's page; LivePerson posts the code.
	before := h.idp.TokenRequests()
	code, tok := h.token(connectorID, connectorSecret, h.pageLogin(oidctest.User{
		Subject: "user-42", Name: "Alice Example", Email: "alice@example.test", EmailVerified: true, AMR: []string{"pwd", "otp"},
	}))
	require.Equal(t, http.StatusOK, code, tok)
	assert.Equal(t, before+1, h.idp.TokenRequests(), "the IdP was asked for the code")
	assert.Equal(t, "Bearer", tok["token_type"])
	assert.NotEmpty(t, tok["access_token"])
	claims := h.verifyIDToken(tok["id_token"].(string))
	assert.Equal(t, "user-42", claims["sub"])
	assert.Equal(t, "alice@example.test", claims["email"])
	sdes, _ := json.Marshal(claims["lp_sdes"])
	assert.JSONEq(t, `[{"type":"ctmrinfo","info":{"customerId":"user-42"}},{"type":"personal","personal":{"firstname":"Alice Example","contacts":[{"email":"alice@example.test"}]}}]`, string(sdes))
	hdr, _, err := jwt.NewParser().ParseUnverified(tok["id_token"].(string), jwt.MapClaims{})
	require.NoError(t, err)
	assert.Equal(t, "acme-2026-11", hdr.Header["kid"], "the first key signs")
	assert.Contains(t, h.kids, "acme-2026-11")

	// LivePerson authenticates the consumer with that token: the new
	// consumer's profile carries the token's lp_sdes.
	h.lp.SetProfile(authed, map[string]any{"authenticatedData": map[string]any{"lp_sdes": claims["lp_sdes"]}})

	// The swap arrives, with a duplicate and out-of-order copies.
	swap := cqm(conv, authed, "OPEN", 1528371195521)
	code, out = h.post(swap, nil)
	require.Equal(t, http.StatusOK, code, out)
	assert.EqualValues(t, 1, out["events"])
	code, out = h.post(swap, nil)
	require.Equal(t, http.StatusOK, code)
	assert.EqualValues(t, 1, out["duplicates"])
	code, _ = h.post(cqm(conv, anon, "OPEN", 1528371170000), nil) // older, delayed
	require.Equal(t, http.StatusOK, code)
	code, _ = h.post(cqm(conv, authed, "OPEN", 1528371199999), nil) // a later change
	require.Equal(t, http.StatusOK, code)
	var wg sync.WaitGroup
	for range 4 { // concurrent redeliveries
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.post(swap, nil)
		}()
	}
	wg.Wait()

	sess, err = h.status(conv)
	require.NoError(t, err)
	require.Equal(t, bridge.StateSteppedUp, sess.State)
	assert.Equal(t, "user-42", sess.Identity.Subject)
	assert.Equal(t, "Acme login", sess.Identity.Provider, "correlated with the recorded login, not just the platform's word")
	assert.Equal(t, []string{"pwd", "otp"}, sess.Identity.AMR)

	// Exactly one agent-only note with the verified identity, and the transfer.
	eventually(t, func() bool { return len(h.lp.Messages()) >= 1 }, "agent note")
	if skill != "" {
		eventually(t, func() bool { return len(h.lp.Transfers()) >= 1 }, "skill transfer")
	}
	time.Sleep(300 * time.Millisecond) // room for a wrong second delivery
	msgs := h.lp.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, liveperson.AudienceAgentsManagers, msgs[0].Audience)
	assert.Contains(t, msgs[0].Text, "Step-up: Alice Example (user-42) verified by Acme login with pwd, otp at ")
	assert.NotContains(t, msgs[0].Text, "alice@example.test")
	if skill != "" {
		assert.Equal(t, []lptest.Transfer{{Conversation: conv, Skill: authedSkill}}, h.lp.Transfers())
	} else {
		assert.Empty(t, h.lp.Transfers())
	}
	assert.Empty(t, h.lp.Violations())
}

func TestEndToEndNegative(t *testing.T) {
	h := newHarness(t, authedSkill)
	const conv = "0c0c0c0c-1111-2222-3333-444444444444"

	t.Run("bad signature", func(t *testing.T) {
		code, out := h.post(cqm(conv, "anon", "OPEN", 10), func(hd http.Header) { hd.Set(liveperson.HeaderSignature, "sha1=e/TfS0wv1HbvEsMqcBMmFLcMslI=") })
		assert.Equal(t, http.StatusUnauthorized, code, out)
		_, err := h.status(conv)
		assert.ErrorIs(t, err, bridge.ErrNotFound, "nothing recorded")
	})
	t.Run("wrong client id", func(t *testing.T) {
		code, _ := h.post(cqm(conv, "anon", "OPEN", 10), func(hd http.Header) { hd.Set(liveperson.HeaderClientID, "another-app") })
		assert.Equal(t, http.StatusUnauthorized, code)
	})
	t.Run("wrong account", func(t *testing.T) {
		code, _ := h.post(cqm(conv, "anon", "OPEN", 10), func(hd http.Header) { hd.Set(liveperson.HeaderAccountID, "1") })
		assert.Equal(t, http.StatusUnauthorized, code)
	})
	t.Run("malformed body", func(t *testing.T) {
		code, out := h.post(`{"kind":"notification","type":"cqm.ExConversationChangeNotification","body":{"changes":[{"type":"UPSERT","result":{"convId":"x","conversationDetails":{"state":"OPEN"}}}]}}`, nil)
		assert.Equal(t, http.StatusBadRequest, code)
		assert.Contains(t, out["error"], "metaDataLastUpdateTs")
	})

	t.Run("wrong Basic credentials on /token", func(t *testing.T) {
		before := h.idp.TokenRequests()
		for _, creds := range [][2]string{{connectorID, "wrong"}, {"someone", connectorSecret}, {"", ""}} {
			code, out := h.token(creds[0], creds[1], "any-code")
			assert.Equal(t, http.StatusUnauthorized, code)
			assert.Equal(t, map[string]any{"error": "unauthorized_client"}, out)
		}
		req, _ := http.NewRequest(http.MethodPost, h.bridge.URL+"/token/acme", strings.NewReader("grant_type=authorization_code&code=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		code, _ := do(t, req)
		assert.Equal(t, http.StatusUnauthorized, code, "no Authorization at all")
		assert.Equal(t, before, h.idp.TokenRequests(), "the IdP is never asked for an unauthenticated caller")
	})
	t.Run("code the IdP rejects", func(t *testing.T) {
		want, err := os.ReadFile(filepath.Join("testdata", "consumer-auth.code-flow.token-endpoint-error.json"))
		require.NoError(t, err)
		c := h.pageLogin(oidctest.User{Subject: "user-7"})
		code, _ := h.token(connectorID, connectorSecret, c)
		require.Equal(t, http.StatusOK, code)
		for _, bad := range []string{c /* used once already */, "never-issued"} {
			req := lptest.TokenRequest(h.bridge.URL+"/token/acme", connectorID, connectorSecret, bad, pageRedirect)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
			assert.JSONEq(t, string(want), string(body), "LivePerson's documented error body")
		}
	})
	t.Run("IdP down", func(t *testing.T) {
		c := h.pageLogin(oidctest.User{Subject: "user-8"})
		h.idp.OnToken(func(w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return true
		})
		defer h.idp.OnToken(nil)
		code, out := h.token(connectorID, connectorSecret, c)
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.Equal(t, map[string]any{"error": "temporarily_unavailable"}, out)
	})
	t.Run("bad token requests", func(t *testing.T) {
		for _, tc := range []struct {
			name, body, ctype, want string
		}{
			{"password grant", "grant_type=password&username=a&password=b", "application/x-www-form-urlencoded", "unsupported_grant_type"},
			{"no code", "grant_type=authorization_code&redirect_uri=" + url.QueryEscape(pageRedirect), "application/x-www-form-urlencoded", "invalid_code"},
			{"JSON body", `{"grant_type":"authorization_code"}`, "application/json", "invalid_request"},
			{"broken form", "grant_type=%zz", "application/x-www-form-urlencoded", "invalid_request"},
		} {
			req, _ := http.NewRequest(http.MethodPost, h.bridge.URL+"/token/acme", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ctype)
			req.SetBasicAuth(connectorID, connectorSecret)
			code, out := do(t, req)
			assert.Equal(t, http.StatusBadRequest, code, tc.name)
			assert.Equal(t, map[string]any{"error": tc.want}, out, tc.name)
		}
		big := bytes.Repeat([]byte("a"), 64<<10)
		req, _ := http.NewRequest(http.MethodPost, h.bridge.URL+"/token/acme", bytes.NewReader(append([]byte("grant_type=authorization_code&code="), big...)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(connectorID, connectorSecret)
		code, _ := do(t, req)
		assert.Equal(t, http.StatusBadRequest, code, "oversized body")
		code, _ = do(t, lptest.TokenRequest(h.bridge.URL+"/token/nobrand", connectorID, connectorSecret, "x", pageRedirect))
		assert.Equal(t, http.StatusNotFound, code)
	})

	t.Run("live chat conversation", func(t *testing.T) {
		const lc = "11111111-2222-3333-4444-555555555555"
		body := strings.Replace(cqm(lc, "anon-lc", "OPEN", 20), `"channelType":"MESSAGING"`, `"channelType":"LIVE_CHAT"`, 1)
		code, _ := h.post(body, nil)
		require.Equal(t, http.StatusOK, code, "acknowledged, or LivePerson would retry for days")
		_, err := h.status(lc)
		assert.ErrorIs(t, err, bridge.ErrNotFound, "step-up is for messaging only: nothing recorded")
		assert.Equal(t, 1, h.rec.count("refused_not_messaging"), "counted with its reason")
	})

	t.Run("swap on a closed conversation", func(t *testing.T) {
		const cc, anon, authed = "99999999-8888-7777-6666-555555555555", "anon-closed", "authed-closed"
		h.lp.OpenConversation(cc)
		code, _ := h.post(cqm(cc, anon, "OPEN", 100), nil)
		require.Equal(t, http.StatusOK, code)
		code, _ = h.post(cqm(cc, anon, "CLOSE", 200), nil)
		require.Equal(t, http.StatusOK, code)
		c := h.pageLogin(oidctest.User{Subject: "user-9", Name: "Mallory"})
		code, _ = h.token(connectorID, connectorSecret, c)
		require.Equal(t, http.StatusOK, code)
		h.lp.SetProfile(authed, lptest.AuthenticatedProfile("user-9"))
		code, _ = h.post(cqm(cc, authed, "OPEN", 300), nil)
		require.Equal(t, http.StatusOK, code)
		time.Sleep(200 * time.Millisecond)
		sess, err := h.status(cc)
		require.NoError(t, err)
		assert.Equal(t, bridge.StateClosed, sess.State)
		for _, m := range h.lp.Messages() {
			assert.NotEqual(t, cc, m.Conversation)
		}
	})
	assert.Empty(t, h.lp.Violations())
}

// TestAgentCommand: an agent typing /verify in a LivePerson conversation
// gets the consumer a login link (bridge-driven step-up on LivePerson), posted
// through the agent messaging API to everyone in the conversation.
func TestAgentCommand(t *testing.T) {
	h := newHarness(t, "")
	const conv = "abcdef01-2345-6789-abcd-ef0123456789"
	h.lp.OpenConversation(conv)
	code, _ := h.post(cqm(conv, "anon-v", "OPEN", 50), nil)
	require.Equal(t, http.StatusOK, code)
	code, _ = h.post(msgText(conv, "agent-1", "ASSIGNED_AGENT", 3, "/verify"), nil)
	require.Equal(t, http.StatusOK, code)
	eventually(t, func() bool { return len(h.lp.Messages()) == 1 }, "login link posted")
	m := h.lp.Messages()[0]
	assert.Equal(t, "", m.Audience, "the consumer must see it")
	assert.True(t, strings.HasPrefix(m.Text, "https://bridge.example/login/acme/"), m.Text)
	sess, err := h.status(conv)
	require.NoError(t, err)
	assert.Equal(t, bridge.StateLinkIssued, sess.State)

	// The same command redelivered by LivePerson issues nothing more.
	code, out := h.post(msgText(conv, "agent-1", "ASSIGNED_AGENT", 3, "/verify"), nil)
	require.Equal(t, http.StatusOK, code)
	assert.EqualValues(t, 1, out["duplicates"])
	assert.Empty(t, h.lp.Violations())
}
