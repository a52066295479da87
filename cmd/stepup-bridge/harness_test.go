package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/adapters/standard/standardtest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/httpapi"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore/redistest"
	"github.com/stepup-bridge/stepup-bridge/bridge/telemetry"
	"github.com/stepup-bridge/stepup-bridge/bridge/telemetry/telemetrytest"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// redisAddr is the shared Redis the "redis" store variant runs against.
const redisAddr = "127.0.0.1:6379"

// fakeClock is the real time plus an offset that tests move forward: real
// enough for TLS and the IdP, controllable for expiry.
type fakeClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// syncBuffer collects log output from many goroutines.
type syncBuffer = telemetrytest.LogBuffer

// storeCase is one store.driver the flows run against.
type storeCase struct {
	name   string
	driver string
}

var storeCases = []storeCase{{"memory", "memory"}, {"redis", "redis"}}

// brandFix is one configured brand and its fake platform.
type brandFix struct {
	id            string
	apiKey        string
	webhookSecret string
	platform      *standardtest.Server
}

// harness is a running bridge (real TLS listener, real config parsing,
// build()), an oidctest provider and a checking fake platform per brand.
type harness struct {
	t       *testing.T
	ctx     context.Context
	clock   *fakeClock
	idp     *oidctest.Provider
	app     *App
	url     string // public URL, https
	brands  map[string]*brandFix
	logs    *syncBuffer
	rt      http.RoundTripper // trusts the bridge's certificate
	api     *http.Client
	workers bool
	maxBody int64
	// secrets seen during the run (tickets, cookies, state, nonce, codes)
	// that must never reach a log line.
	secrets []string

	// What start needs to run the bridge again (restart).
	cfg     *config.Config
	prefix  string
	log     *slog.Logger
	cert    tls.Certificate
	stopApp func() // stops the running App; nil when stopped
}

// start builds an App from the harness's configuration and serves it on ln.
func (h *harness) start(ln net.Listener) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(h.ctx)
	app, err := build(ctx, h.cfg, h.log, buildOptions{Clock: h.clock, RedisPrefix: h.prefix})
	if err != nil {
		cancel()
		ln.Close()
		require.NoError(h.t, err)
	}
	h.app = app
	tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{h.cert}, MinVersion: tls.VersionTLS12})
	done := make(chan error, 1)
	if h.workers {
		go func() { done <- app.serve(ctx, tln) }()
	} else {
		srv := &http.Server{Handler: app.Handler, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			<-ctx.Done()
			srv.Close()
		}()
		go func() {
			if err := srv.Serve(tln); !errors.Is(err, http.ErrServerClosed) {
				done <- err
				return
			}
			done <- nil
		}()
	}
	h.stopApp = func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(h.t, err, "serve")
		case <-time.After(30 * time.Second):
			h.t.Error("server did not stop")
		}
		app.Close()
	}
}

// stop shuts the running App down as SIGTERM does.
func (h *harness) stop() {
	if h.stopApp != nil {
		h.stopApp()
		h.stopApp = nil
	}
}

// restart stops the App and starts a new one on the same address and
// store: a crash and a replacement replica, as far as the store can tell.
func (h *harness) restart() {
	h.t.Helper()
	h.stop()
	ln, err := net.Listen("tcp", strings.TrimPrefix(h.url, "https://"))
	require.NoError(h.t, err)
	h.start(ln)
}

type harnessOptions struct {
	// workers runs App.serve (HTTP server and outbox workers); without,
	// the router is served alone and tests inspect the outbox through
	// the store (see drainOutbox, requireNoOutbox).
	workers bool
}

func newHarness(t *testing.T, sc storeCase, ho harnessOptions) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, ctx: ctx, clock: &fakeClock{}, logs: &syncBuffer{}, brands: map[string]*brandFix{}, workers: ho.workers, maxBody: 64 << 10}
	h.idp = oidctest.NewTest(t, oidctest.Config{Now: h.clock.Now})
	// Registered first, so it runs last, on the logs of the whole run:
	// rejected logins included (their tokens carry the default user).
	t.Cleanup(func() {
		h.t = t
		h.requireLogsClean("alice@example.test", "Alice Example")
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h.url = "https://" + ln.Addr().String()

	env := map[string]string{"IDP_CLIENT_SECRET": h.idp.ClientSecret()}
	var brandsYAML strings.Builder
	// acme and globex bind with a confirm code (the default), initech
	// with binding none; globex steps up on the web channel only.
	for _, id := range []string{"acme", "globex", "initech"} {
		bf := &brandFix{id: id, apiKey: id + "-api-key-" + bridge.RandomString(24), webhookSecret: standardtest.NewSecret()}
		bf.platform = standardtest.NewServer(t, standardtest.NewSecret(), standardtest.Options{Clock: h.clock})
		h.brands[id] = bf
		h.idp.AddRedirectURI(h.url + "/callback/" + id)
		up := strings.ToUpper(id)
		env[up+"_API_KEY"] = bf.apiKey
		env[up+"_WEBHOOK_SECRET"] = bf.webhookSecret
		env[up+"_ENDPOINT_SECRET"] = bf.platform.Secret()
		fmt.Fprintf(&brandsYAML, `
  - id: %[1]s
    api_keys: ["${%[2]s_API_KEY}"]
    platforms:
      - type: standard
        webhook_secrets: ["${%[2]s_WEBHOOK_SECRET}"]
        endpoint: %[3]s/events
        endpoint_secret: ${%[2]s_ENDPOINT_SECRET}
    identity:
      type: oidc
      issuer: %[4]s
      client_id: %[5]s
      client_secret: ${IDP_CLIENT_SECRET}
`, id, up, bf.platform.URL, h.idp.Issuer(), h.idp.ClientID())
		switch id {
		case "globex":
			brandsYAML.WriteString("    step_up:\n      channels: [web]\n")
		case "initech":
			brandsYAML.WriteString("    step_up:\n      binding: none\n")
		}
	}
	store := "  driver: memory\n"
	prefix := ""
	switch sc.driver {
	case "redis":
		prefix = "e2e-" + strings.ReplaceAll(bridge.RandomString(9), "_", "x")
		store = fmt.Sprintf("  driver: redis\n  redis:\n    addrs: [%q]\n", redisAddr)
		cleanRedis(t, prefix)
	case "redis-cluster":
		addrs := redistest.ClusterAddrs()
		require.NotEmpty(t, addrs, "the caller skips the cluster case when STEPUP_REDIS_CLUSTER is unset")
		prefix = "e2e-" + strings.ReplaceAll(bridge.RandomString(9), "_", "x")
		store = fmt.Sprintf("  driver: redis\n  redis:\n    addrs: [%s]\n", `"`+strings.Join(addrs, `", "`)+`"`)
		c := redistest.Client(t, addrs...)
		t.Cleanup(func() {
			if err := redistest.DeletePrefix(context.Background(), c, prefix); err != nil {
				t.Logf("cleaning cluster prefix %s: %v", prefix, err)
			}
		})
	}
	yaml := fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
  public_url: %s
  max_body_bytes: %d
  log_format: json
  log_level: debug
store:
%s  outbox:
    min_backoff: 100ms
    max_backoff: 1s
    call_timeout: 2s
    claim_idle: 5s
brands:%s`, h.url, h.maxBody, store, brandsYAML.String())
	cfg, err := config.Parse([]byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err, "config:\n%s", yaml)
	h.cfg, h.prefix = cfg, prefix
	h.log = telemetry.NewLogger(h.logs, "json", "debug")
	cert, pool := selfSigned(t)
	h.cert = cert
	h.start(ln)
	t.Cleanup(func() {
		h.t = t
		h.stop()
		cancel()
	})
	h.rt = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	h.api = &http.Client{Transport: h.rt, Timeout: 30 * time.Second, CheckRedirect: noRedirect}
	return h
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// cleanRedis deletes the prefix's keys when the test ends (and fails the
// test early, clearly, when Redis is not there).
func cleanRedis(t *testing.T, prefix string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: redisAddr})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		t.Fatalf("redis at %s: %v (start one: see DEVELOPERS.md)", redisAddr, err)
	}
	t.Cleanup(func() {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+":*", 500).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Logf("cleaning redis prefix %s: %v", prefix, err)
		}
	})
}

// selfSigned makes a certificate for 127.0.0.1 and the pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stepup-bridge e2e"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// --- platform side ---

// event is an inbound Standard Webhooks event: type and data.
type event struct {
	typ  string
	data any
}

func started(conv, consumer, channel string) event {
	return event{"conversation.started", standardtest.ConversationStarted{ConversationID: conv, ConsumerID: consumer, Channel: channel}}
}

func consumerSays(conv, consumer, text string) event {
	return event{"message.created", standardtest.MessageCreated{ConversationID: conv, ConsumerID: consumer, Channel: "web", Author: standardtest.Author{Role: "consumer", ID: consumer}, Text: text}}
}

func agentSays(conv, text string) event {
	return event{"message.created", standardtest.MessageCreated{ConversationID: conv, Author: standardtest.Author{Role: "agent", ID: "agent-7"}, Text: text}}
}

// signed is a signed Standard Webhooks request of brand, sent now.
func (h *harness) signed(brand string, ev event) (http.Header, []byte) {
	body := standardtest.Body(ev.typ, h.clock.Now(), ev.data)
	return standardtest.SignedRequest(h.brands[brand].webhookSecret, "msg_"+bridge.RandomString(12), h.clock.Now(), body), body
}

// webhook sends a signed event and requires 200.
func (h *harness) webhook(brand string, ev event) map[string]any {
	h.t.Helper()
	hdr, body := h.signed(brand, ev)
	code, got := h.postWebhook(brand, hdr, body)
	require.Equal(h.t, http.StatusOK, code, "webhook %s: %v", ev.typ, got)
	return got
}

func (h *harness) postWebhook(brand string, hdr http.Header, body []byte) (int, map[string]any) {
	h.t.Helper()
	return h.postWebhookTo("/webhooks/"+brand+"/standard", hdr, body)
}

func (h *harness) postWebhookTo(path string, hdr http.Header, body []byte) (int, map[string]any) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, h.url+path, bytes.NewReader(body))
	require.NoError(h.t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	return h.doJSON(req)
}

func (h *harness) doJSON(req *http.Request) (int, map[string]any) {
	h.t.Helper()
	resp, err := h.api.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	var out map[string]any
	if len(raw) > 0 {
		require.NoError(h.t, json.Unmarshal(raw, &out), "response %d is not JSON: %q", resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// --- API ---

func (h *harness) apiRequest(method, path, key string, body []byte) (int, map[string]any) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.ctx, method, h.url+path, bytes.NewReader(body))
	require.NoError(h.t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return h.doJSON(req)
}

// requestLink asks the API for a login link, posted to the consumer.
func (h *harness) requestLink(brand, conv string, post bool) string {
	h.t.Helper()
	code, got := h.apiRequest(http.MethodPost, "/api/v1/brands/"+brand+"/conversations/"+conv+"/login-links", h.brands[brand].apiKey, fmt.Appendf(nil, `{"post":%t}`, post))
	require.Equal(h.t, http.StatusCreated, code, "login-links: %v", got)
	link, _ := got["url"].(string)
	require.True(h.t, strings.HasPrefix(link, h.url+"/login/"+brand+"/"), "link %q", link)
	assert.Equal(h.t, post, got["posted"])
	return link
}

func (h *harness) status(brand, conv string) map[string]any {
	h.t.Helper()
	code, got := h.apiRequest(http.MethodGet, "/api/v1/brands/"+brand+"/conversations/"+conv, h.brands[brand].apiKey, nil)
	require.Equal(h.t, http.StatusOK, code, "status: %v", got)
	return got
}

// --- store side ---

func (h *harness) session(brand, conv string) bridge.Session {
	h.t.Helper()
	s, err := h.app.Store.Get(h.ctx, bridge.Key{Brand: brand, Conversation: conv})
	require.NoError(h.t, err)
	return s
}

func (h *harness) requireNoSession(brand, conv string) {
	h.t.Helper()
	_, err := h.app.Store.Get(h.ctx, bridge.Key{Brand: brand, Conversation: conv})
	require.ErrorIs(h.t, err, bridge.ErrNotFound)
}

// drainOutbox claims and acknowledges every due entry (harness without
// workers only) and returns them.
func (h *harness) drainOutbox() []bridge.OutboxEntry {
	h.t.Helper()
	require.False(h.t, h.workers, "the outbox belongs to the workers")
	var out []bridge.OutboxEntry
	for {
		ds, err := h.app.Store.Claim(h.ctx, "probe", 100, 50*time.Millisecond)
		require.NoError(h.t, err)
		if len(ds) == 0 {
			return out
		}
		for _, d := range ds {
			require.NoError(h.t, h.app.Store.Ack(h.ctx, d))
			out = append(out, d.Entry)
		}
	}
}

func (h *harness) requireNoOutbox() {
	h.t.Helper()
	got := h.drainOutbox()
	require.Empty(h.t, got, "outbox entries written")
}

// waitCalls waits until the brand's platform has accepted n calls for conv.
func (h *harness) waitCalls(brand, conv string, n int) []standardtest.Call {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got []standardtest.Call
		for _, c := range h.brands[brand].platform.Calls() {
			if callConversation(c) == conv {
				got = append(got, c)
			}
		}
		if len(got) >= n {
			require.Len(h.t, got, n, "calls for %s", conv)
			return got
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("platform of %s got %d calls for %s, want %d (violations: %v)", brand, len(got), conv, n, h.brands[brand].platform.Violations())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func callConversation(c standardtest.Call) string {
	switch m := c.Message.(type) {
	case *standardtest.MessagePost:
		return m.ConversationID
	case *standardtest.IdentityAttach:
		return m.ConversationID
	case *standardtest.AgentsNotify:
		return m.ConversationID
	case *standardtest.SkillRoute:
		return m.ConversationID
	}
	return ""
}

// --- browser side ---

// browser is a cookie-keeping client that follows redirects one by one so
// that each hop can be checked. Its jar sends Secure cookies over https only.
type browser struct {
	h *harness
	c *http.Client
}

func (h *harness) newBrowser() *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(h.t, err)
	return &browser{h: h, c: &http.Client{Transport: h.rt, Jar: jar, CheckRedirect: noRedirect, Timeout: 30 * time.Second}}
}

type page struct {
	status int
	header http.Header
	body   string
	loc    string
}

func (b *browser) do(method, u string, hdr http.Header) page {
	b.h.t.Helper()
	req, err := http.NewRequestWithContext(b.h.ctx, method, u, nil)
	require.NoError(b.h.t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := b.c.Do(req)
	require.NoError(b.h.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(b.h.t, err)
	return page{status: resp.StatusCode, header: resp.Header, body: string(raw), loc: resp.Header.Get("Location")}
}

func (b *browser) get(u string) page { return b.do(http.MethodGet, u, nil) }

// submit posts the start page's form as a current browser does: the page's
// Referrer-Policy no-referrer makes it send "Origin: null"; Fetch Metadata
// says same-origin.
func (b *browser) submit(link string) page {
	return b.do(http.MethodPost, link, http.Header{
		"Origin": {"null"}, "Sec-Fetch-Site": {"same-origin"}, "Sec-Fetch-Mode": {"navigate"}, "Sec-Fetch-Dest": {"document"},
		"Content-Type": {"application/x-www-form-urlencoded"},
	})
}

var formActionRe = regexp.MustCompile(`<form method="post" action="([^"]+)">`)

// startLogin opens the link, checks the preview page and submits it: it
// returns the authorization request the bridge redirected to.
func (b *browser) startLogin(link string) *url.URL {
	b.h.t.Helper()
	t := b.h.t
	p := b.get(link)
	require.Equal(t, http.StatusOK, p.status, p.body)
	requireSecurityHeaders(t, p)
	// The page says which conversation the link steps up (DESIGN §6).
	assert.Regexp(t, `This is for the chat started on <strong>\d{1,2} \w{3} \d{4}, \d\d:\d\d UTC</strong> via <strong>web</strong>`, p.body)
	m := formActionRe.FindStringSubmatch(p.body)
	require.NotNil(t, m, "start page has no form: %s", p.body)
	target, err := url.Parse(link)
	require.NoError(t, err)
	require.Equal(t, target.Path, m[1], "form posts back to the link")
	b.h.secrets = append(b.h.secrets, target.Path[strings.LastIndex(target.Path, "/")+1:])

	p = b.submit(link)
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	requireLoginCookie(t, p.header)
	auth, err := url.Parse(p.loc)
	require.NoError(t, err)
	q := auth.Query()
	b.h.secrets = append(b.h.secrets, loginCookie(t, p.header).Value, q.Get("state"), q.Get("nonce"), q.Get("code_challenge"))
	require.True(t, strings.HasPrefix(p.loc, b.h.idp.Issuer()+"/authorize?"), "redirect to %s", p.loc)
	return auth
}

// authorize lets the IdP log the (queued) user in; it returns the callback URL.
func (b *browser) authorize(auth *url.URL) string {
	b.h.t.Helper()
	p := b.get(auth.String())
	require.Equal(b.h.t, http.StatusFound, p.status, p.body)
	require.True(b.h.t, strings.HasPrefix(p.loc, b.h.url+"/callback/"), "IdP redirected to %s", p.loc)
	cb, err := url.Parse(p.loc)
	require.NoError(b.h.t, err)
	b.h.secrets = append(b.h.secrets, cb.Query().Get("code"))
	return p.loc
}

// jwtRe finds a compact JWS (header.payload.): a bare "eyJ" also occurs
// in random request ids.
var jwtRe = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.`)

var codeRe = regexp.MustCompile(`<p class="code" aria-label="Your code">([0-9 ]+)</p>`)

// login runs the browser side of a login up to the confirm code page and
// returns the code as displayed.
func (b *browser) login(link string) string {
	b.h.t.Helper()
	p := b.get(b.authorize(b.startLogin(link)))
	require.Equal(b.h.t, http.StatusOK, p.status, p.body)
	requireSecurityHeaders(b.h.t, p)
	requireCookieCleared(b.h.t, p.header)
	m := codeRe.FindStringSubmatch(p.body)
	require.NotNil(b.h.t, m, "code page without a code: %s", p.body)
	assert.Contains(b.h.t, p.body, "Never give this code to anyone")
	assert.Contains(b.h.t, p.body, "This is for the chat started on")
	b.h.secrets = append(b.h.secrets, unspaced(m[1]), m[1])
	return m[1]
}

// requireSecurityHeaders checks what every consumer page must carry.
func requireSecurityHeaders(t *testing.T, p page) {
	t.Helper()
	csp := p.header.Get("Content-Security-Policy")
	assert.Contains(t, csp, "frame-ancestors 'none'")
	assert.Contains(t, csp, "default-src 'none'")
	assert.Equal(t, "no-referrer", p.header.Get("Referrer-Policy"))
	assert.Equal(t, "nosniff", p.header.Get("X-Content-Type-Options"))
	assert.Equal(t, "no-store", p.header.Get("Cache-Control"))
	assert.Equal(t, "text/html; charset=utf-8", p.header.Get("Content-Type"))
}

func loginCookie(t *testing.T, hdr http.Header) *http.Cookie {
	t.Helper()
	for _, line := range hdr.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		require.NoError(t, err)
		if c.Name == httpapi.CookieName {
			return c
		}
	}
	return nil
}

// requireLoginCookie checks the transaction cookie's attributes: __Host-
// needs Secure, Path=/ and no Domain.
func requireLoginCookie(t *testing.T, hdr http.Header) {
	t.Helper()
	c := loginCookie(t, hdr)
	require.NotNil(t, c, "no %s cookie set", httpapi.CookieName)
	assert.True(t, strings.HasPrefix(c.Name, "__Host-"))
	assert.True(t, c.Secure, "Secure")
	assert.True(t, c.HttpOnly, "HttpOnly")
	assert.Equal(t, http.SameSiteLaxMode, c.SameSite)
	assert.Equal(t, "/", c.Path)
	assert.Empty(t, c.Domain)
	assert.Positive(t, c.MaxAge)
	assert.NotEmpty(t, c.Value)
}

func requireCookieCleared(t *testing.T, hdr http.Header) {
	t.Helper()
	c := loginCookie(t, hdr)
	require.NotNil(t, c, "callback does not clear the cookie")
	assert.Negative(t, c.MaxAge)
	assert.True(t, c.Secure)
}

// unspaced is the code as a consumer could type it.
func unspaced(code string) string { return strings.ReplaceAll(code, " ", "") }

// requireLogsClean checks the captured logs hold none of the secrets and
// personal data seen in the run, nor any JWT.
func (h *harness) requireLogsClean(personal ...string) {
	h.t.Helper()
	logs := h.logs.String()
	require.Contains(h.t, logs, `"msg":"http request"`, "the log capture works")
	for _, bf := range h.brands {
		personal = append(personal, bf.apiKey, bf.webhookSecret, bf.platform.Secret(),
			strings.TrimPrefix(bf.webhookSecret, "whsec_"), strings.TrimPrefix(bf.platform.Secret(), "whsec_"))
	}
	personal = append(personal, h.idp.ClientSecret())
	for _, s := range append(personal, h.secrets...) {
		if s == "" {
			continue
		}
		if regexp.MustCompile(`^[0-9 ]+$`).MatchString(s) {
			// A code: only as a whole number, not inside a timestamp.
			re := regexp.MustCompile(`(^|[^0-9])` + regexp.QuoteMeta(s) + `([^0-9]|$)`)
			for _, line := range strings.Split(logs, "\n") {
				assert.False(h.t, re.MatchString(line), "confirm code %q in a log line: %s", s, line)
			}
			continue
		}
		for _, line := range strings.Split(logs, "\n") {
			assert.NotContains(h.t, line, s, "secret or personal data in a log line")
		}
	}
	for _, line := range strings.Split(logs, "\n") {
		assert.NotRegexp(h.t, jwtRe, line, "a JWT in a log line")
	}
}
