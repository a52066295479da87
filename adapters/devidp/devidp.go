// Package devidp is a DEVELOPMENT ONLY OpenID Provider: the identity
// provider of `stepup-bridge demo`, reusable in tests. It is real where the
// bridge is concerned — RSA keys generated at start, a discovery document,
// a JWK Set, the authorization code flow with PKCE S256 checked, nonce and
// iss in the answers, client_secret_basic at the token endpoint, single-use
// codes — and fake where people are concerned: its login page offers a few
// sample identities to pick, with no password.
//
// It refuses to listen on anything but a loopback address, labels its pages
// and its log lines as development only, and never logs codes, tokens or
// personal data.
package devidp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

//go:embed web
var webFS embed.FS

// Label is shown on every page and carried by every log line.
const Label = "DEVELOPMENT ONLY"

// User is a sample identity offered on the login page.
type User struct {
	Subject       string
	Name          string
	Email         string
	EmailVerified bool
	// CustomerID goes into the customer_id claim.
	CustomerID string
	// AMR and ACR say how the user "authenticated" (RFC 8176 values).
	AMR []string
	ACR string
}

// SampleUsers are the identities the demo offers.
var SampleUsers = []User{
	{Subject: "u-1001", Name: "Alex Morgan", Email: "alex.morgan@example.com", EmailVerified: true, CustomerID: "C-1001", AMR: []string{"pwd", "otp"}, ACR: "urn:demo:loa:2"},
	{Subject: "u-1002", Name: "Sam Rivera", Email: "sam.rivera@example.com", EmailVerified: true, CustomerID: "C-1002", AMR: []string{"pwd"}, ACR: "urn:demo:loa:1"},
	{Subject: "u-1003", Name: "Priya Shah", Email: "priya.shah@example.com", EmailVerified: true, CustomerID: "C-1003", AMR: []string{"hwk", "user"}, ACR: "urn:demo:loa:3"},
}

// Event is something the provider did, for an observer such as the demo's
// timeline (it may carry a sample user's name: it is not for logs).
type Event struct {
	At   time.Time
	Kind string // authorize, login, cancel, token, refused
	Text string
}

// Options configure a provider. Zero values take the defaults shown.
type Options struct {
	// Addr to listen on: a loopback host and port (default 127.0.0.1:0).
	Addr string
	// Listener, when set, is used instead of Addr; it must be loopback too.
	Listener net.Listener
	// ClientID and ClientSecret of the one registered client.
	ClientID     string
	ClientSecret string
	// RedirectURIs registered for the client, matched exactly.
	RedirectURIs []string
	// Users offered on the login page (default SampleUsers).
	Users []User
	// Now is the clock (default time.Now); the demo shares one with the bridge.
	Now func() time.Time
	// CodeTTL (default 1m) and TokenTTL (default 5m).
	CodeTTL  time.Duration
	TokenTTL time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// OnEvent observes what the provider does; it must not block.
	OnEvent func(Event)
}

// pending is an authorization request waiting for the login page's answer.
type pending struct {
	redirectURI, state, nonce, challenge string
	expires                              time.Time
}

// grant is an issued authorization code.
type grant struct {
	redirectURI, challenge, nonce string
	user                          User
	authTime, expires             time.Time
}

// Server is a running development provider.
type Server struct {
	o      Options
	ln     net.Listener
	srv    *http.Server
	issuer string
	key    *rsa.PrivateKey
	kid    string
	pages  *template.Template
	log    *slog.Logger

	mu       sync.Mutex
	requests map[string]*pending
	codes    map[string]*grant
}

// ErrNotLoopback is returned by Start for a non-loopback address.
var ErrNotLoopback = errors.New("devidp: " + Label + ": refusing to listen on a non-loopback address")

// Start checks the options, generates the signing key and serves until Close.
func Start(o Options) (*Server, error) {
	if o.ClientID == "" || o.ClientSecret == "" {
		return nil, errors.New("devidp: client id and secret are required")
	}
	if len(o.RedirectURIs) == 0 {
		return nil, errors.New("devidp: at least one redirect URI is required")
	}
	if len(o.Users) == 0 {
		o.Users = SampleUsers
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CodeTTL <= 0 {
		o.CodeTTL = time.Minute
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ln := o.Listener
	if ln == nil {
		addr := o.Addr
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil || !loopbackHost(host) {
			return nil, fmt.Errorf("%w: %q", ErrNotLoopback, addr)
		}
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, fmt.Errorf("devidp: listen: %w", err)
		}
	}
	// Checked on the bound address too: a listener handed in, or a name
	// that resolved elsewhere, must not expose the provider.
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("%w: %s", ErrNotLoopback, ln.Addr())
	}
	// 2048-bit RSA: what real IdPs use for RS256; generated fresh each start.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("devidp: generate key: %w", err)
	}
	pages, err := template.New("").Funcs(template.FuncMap{"amr": AMRText}).ParseFS(webFS, "web/*.html")
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("devidp: pages: %w", err)
	}
	s := &Server{
		o: o, ln: ln, key: key, kid: "devidp-" + randomString(6), pages: pages,
		issuer:   "http://" + ln.Addr().String(),
		log:      o.Logger.With("component", "devidp", "warning", Label),
		requests: map[string]*pending{},
		codes:    map[string]*grant{},
	}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 15 * time.Second}
	go s.srv.Serve(ln)
	s.log.Warn("development identity provider started: sample identities, no passwords; never use it for real logins", "issuer", s.issuer)
	return s, nil
}

// Issuer is the provider's issuer URL (http on loopback).
func (s *Server) Issuer() string { return s.issuer }

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// Handler serves the provider's endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", s.discovery)
	mux.HandleFunc("GET /jwks", s.jwks)
	mux.HandleFunc("GET /authorize", s.authorize)
	mux.HandleFunc("POST /authorize", s.decide)
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("GET /devidp.css", s.stylesheet)
	mux.HandleFunc("GET /{$}", s.home)
	return s.loopbackOnly(mux)
}

// loopbackOnly refuses requests whose Host is not loopback (DNS rebinding:
// a web page must not reach the provider under a name it controls).
func (s *Server) loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !loopbackHost(host) {
			http.Error(w, "devidp: "+Label+": loopback hosts only", http.StatusMisdirectedRequest)
			return
		}
		w.Header().Set("X-Development-Only", "true")
		next.ServeHTTP(w, r)
	})
}

func (s *Server) emit(kind, text string) {
	if s.o.OnEvent != nil {
		s.o.OnEvent(Event{At: s.o.Now(), Kind: kind, Text: text})
	}
}

func (s *Server) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                         s.issuer,
		"authorization_endpoint":                         s.issuer + "/authorize",
		"token_endpoint":                                 s.issuer + "/token",
		"jwks_uri":                                       s.issuer + "/jwks",
		"response_types_supported":                       []string{"code"},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          []string{"RS256"},
		"code_challenge_methods_supported":               []string{"S256"},
		"token_endpoint_auth_methods_supported":          []string{"client_secret_basic"},
		"grant_types_supported":                          []string{"authorization_code"},
		"scopes_supported":                               []string{"openid", "profile", "email"},
		"claims_supported":                               []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name", "email", "email_verified", "amr", "acr", "customer_id"},
		"authorization_response_iss_parameter_supported": true,
	})
}

func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	pub := s.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": s.kid,
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// authorize checks the request as a strict provider does. Until client_id
// and redirect_uri are known good it answers with a page, never a redirect
// (RFC 6749 §4.1.2.1: no open redirector); after that, with an error
// redirect.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != s.o.ClientID {
		s.refuse(w, "unknown client_id")
		return
	}
	redirect := q.Get("redirect_uri")
	if !slices.Contains(s.o.RedirectURIs, redirect) {
		s.refuse(w, "redirect_uri is not registered for this client")
		return
	}
	state := q.Get("state")
	fail := func(code, desc string) {
		s.log.Info("authorization request refused", "error", code)
		s.emit("refused", "authorization request refused: "+desc)
		s.redirect(w, r, redirect, url.Values{"error": {code}, "error_description": {desc}, "state": {state}})
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only response_type=code")
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		fail("invalid_scope", "scope must include openid")
	case state == "":
		fail("invalid_request", "state is required")
	case q.Get("nonce") == "":
		fail("invalid_request", "nonce is required")
	case q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "PKCE with code_challenge_method=S256 is required")
	case !validChallenge(q.Get("code_challenge")):
		fail("invalid_request", "code_challenge must be 43 base64url characters")
	default:
		id := randomString(24)
		s.mu.Lock()
		s.gc()
		s.requests[id] = &pending{redirectURI: redirect, state: state, nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), expires: s.o.Now().Add(10 * time.Minute)}
		s.mu.Unlock()
		s.log.Info("authorization request accepted; showing the sample identities")
		s.emit("authorize", "authorization request checked: code flow, PKCE S256, state and nonce present, redirect URI registered")
		s.page(w, http.StatusOK, "login.html", map[string]any{"Request": id, "Users": s.o.Users, "Client": s.o.ClientID, "Return": origin(redirect), "Label": Label}, origin(redirect))
	}
}

// decide is the login page's answer: a sample identity, or Cancel.
func (s *Server) decide(w http.ResponseWriter, r *http.Request) {
	if !s.sameOrigin(r) {
		s.refuse(w, "cross-site form post")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.refuse(w, "malformed form")
		return
	}
	s.mu.Lock()
	p := s.requests[r.PostForm.Get("request")]
	delete(s.requests, r.PostForm.Get("request"))
	s.mu.Unlock()
	if p == nil || !s.o.Now().Before(p.expires) {
		s.refuse(w, "this sign-in request is unknown, used or expired: start again from the link in your chat")
		return
	}
	if r.PostForm.Has("cancel") {
		s.log.Info("sign-in cancelled by the user; answering access_denied")
		s.emit("cancel", "sign-in cancelled at the IdP: redirect back with error=access_denied")
		s.redirect(w, r, p.redirectURI, url.Values{"error": {"access_denied"}, "state": {p.state}, "iss": {s.issuer}})
		return
	}
	i := slices.IndexFunc(s.o.Users, func(u User) bool { return u.Subject == r.PostForm.Get("user") })
	if i < 0 {
		s.refuse(w, "unknown sample identity")
		return
	}
	u := s.o.Users[i]
	code := randomString(32)
	now := s.o.Now()
	s.mu.Lock()
	s.codes[code] = &grant{redirectURI: p.redirectURI, challenge: p.challenge, nonce: p.nonce, user: u, authTime: now, expires: now.Add(s.o.CodeTTL)}
	s.mu.Unlock()
	s.log.Info("sample user signed in; redirecting with a single-use code")
	s.emit("login", fmt.Sprintf("%s signed in at the IdP (%s); single-use code sent back to the bridge", u.Name, AMRText(u.AMR)))
	s.redirect(w, r, p.redirectURI, url.Values{"code": {code}, "state": {p.state}, "iss": {s.issuer}})
}

// token redeems a code: client_secret_basic, single use, same redirect
// URI, and the PKCE verifier must hash to the challenge.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	oauthErr := func(status int, code, desc string) {
		s.log.Info("token request refused", "error", code)
		s.emit("refused", "token request refused: "+desc)
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		// RFC 6749 §2.3.1: both parts are form-urlencoded inside Basic.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	}
	if !ok || id != s.o.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(s.o.ClientSecret)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="devidp"`)
		oauthErr(http.StatusUnauthorized, "invalid_client", "client authentication failed (client_secret_basic)")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		oauthErr(http.StatusBadRequest, "invalid_request", "form-encoded body required")
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != "authorization_code" {
		oauthErr(http.StatusBadRequest, "unsupported_grant_type", "only authorization_code")
		return
	}
	s.mu.Lock()
	g := s.codes[f.Get("code")]
	delete(s.codes, f.Get("code")) // single use, whatever happens next
	s.mu.Unlock()
	now := s.o.Now()
	switch {
	case g == nil || !now.Before(g.expires):
		oauthErr(http.StatusBadRequest, "invalid_grant", "code unknown, used or expired")
		return
	case f.Get("redirect_uri") != g.redirectURI:
		oauthErr(http.StatusBadRequest, "invalid_grant", "redirect_uri differs from the authorization request")
		return
	case !pkceMatches(f.Get("code_verifier"), g.challenge):
		oauthErr(http.StatusBadRequest, "invalid_grant", "PKCE code_verifier does not match the code_challenge")
		return
	}
	u := g.user
	claims := jwt.MapClaims{
		"iss": s.issuer, "sub": u.Subject, "aud": s.o.ClientID,
		"iat": now.Unix(), "exp": now.Add(s.o.TokenTTL).Unix(), "auth_time": g.authTime.Unix(),
		"nonce": g.nonce, "name": u.Name, "email": u.Email, "email_verified": u.EmailVerified,
		"amr": u.AMR, "acr": u.ACR,
	}
	if u.CustomerID != "" {
		claims["customer_id"] = u.CustomerID
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = s.kid
	idToken, err := tok.SignedString(s.key)
	if err != nil {
		oauthErr(http.StatusInternalServerError, "server_error", "could not sign")
		return
	}
	s.log.Info("code redeemed; ID token issued", "alg", "RS256")
	s.emit("token", "code redeemed with client secret and PKCE verifier; RS256 ID token issued (nonce echoed)")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": randomString(32), "token_type": "Bearer", "expires_in": int(s.o.TokenTTL.Seconds()), "id_token": idToken,
	})
}

// sameOrigin accepts the login page's own form post. Browsers say so in
// Sec-Fetch-Site; they send "Origin: null" under the page's no-referrer
// policy, so Origin is only a fallback for clients without Fetch metadata.
func (s *Server) sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin":
		return true
	case "same-site", "cross-site":
		return false
	}
	o := r.Header.Get("Origin")
	return o == "" || o == s.issuer
}

func (s *Server) home(w http.ResponseWriter, _ *http.Request) {
	s.page(w, http.StatusOK, "home.html", map[string]any{"Issuer": s.issuer, "Label": Label})
}

func (s *Server) stylesheet(w http.ResponseWriter, _ *http.Request) {
	css, _ := webFS.ReadFile("web/devidp.css")
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Write(css)
}

// refuse shows an error page instead of redirecting anywhere.
func (s *Server) refuse(w http.ResponseWriter, reason string) {
	s.log.Info("request refused", "reason", reason)
	s.emit("refused", reason)
	s.page(w, http.StatusBadRequest, "error.html", map[string]any{"Reason": reason, "Label": Label})
}

// page renders with a strict CSP; formTargets are origins the page's form
// may lead to (CSP form-action also governs the redirect after the POST).
func (s *Server) page(w http.ResponseWriter, status int, name string, data any, formTargets ...string) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self' "+strings.Join(formTargets, " ")+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := s.pages.ExecuteTemplate(w, name, data); err != nil {
		s.log.Error("render page", "page", name, "error", err)
	}
}

func (s *Server) redirect(w http.ResponseWriter, r *http.Request, target string, params url.Values) {
	u, _ := url.Parse(target) // registered URIs are absolute
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// gc drops expired requests and codes; the caller holds mu.
func (s *Server) gc() {
	now := s.o.Now()
	for k, p := range s.requests {
		if !now.Before(p.expires) {
			delete(s.requests, k)
		}
	}
	for k, g := range s.codes {
		if !now.Before(g.expires) {
			delete(s.codes, k)
		}
	}
}

// AMRText says in words how a user authenticated (RFC 8176 values).
func AMRText(amr []string) string {
	words := map[string]string{"pwd": "password", "otp": "one-time code", "hwk": "security key", "user": "user presence", "mfa": "multi-factor", "sms": "SMS code", "face": "face", "fpt": "fingerprint"}
	var out []string
	for _, a := range amr {
		if w, ok := words[a]; ok {
			out = append(out, w)
		} else {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return "unspecified method"
	}
	return strings.Join(out, " + ")
}

func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 || strings.ContainsFunc(verifier, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r))
	}) {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(b64(sum[:])), []byte(challenge)) == 1
}

func validChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return b64(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
