// Package oidctest is a real, small OpenID Provider on httptest for tests
// and the demo's development IdP: discovery, a JWK Set with an RSA-2048
// (RS256) and an EC P-256 (ES256) key, /authorize that logs the next queued
// user in without any UI, and /token with client_secret_basic, single-use
// codes and PKCE S256. It checks every request the way a strict IdP does,
// and has hooks to mint the malformed and malicious tokens negative tests
// need.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/stepup-bridge/stepup-bridge/config"
)

// Config describes the provider. Zero values take the defaults shown.
type Config struct {
	// ClientID and ClientSecret of the one registered client
	// (defaults "bridge" and "bridge-secret").
	ClientID     string
	ClientSecret string
	// RedirectURIs registered for the client, matched exactly.
	RedirectURIs []string
	// IssuerPath is appended to the server URL to form the issuer, e.g. "/oidc".
	IssuerPath string
	// TLS serves https (with httptest's certificate; see Client).
	TLS bool
	// Addr to listen on (default "127.0.0.1:0", a free port).
	Addr string
	// Now is the provider's clock (default time.Now).
	Now func() time.Time
	// TokenTTL is the ID token lifetime (default 5m); CodeTTL the
	// authorization code's (default 1m).
	TokenTTL time.Duration
	CodeTTL  time.Duration
	// DefaultUser logs in when no user is queued.
	DefaultUser User
	// PKCEOptional lets the confidential client omit PKCE, as most IdPs
	// allow: a code issued without a challenge is redeemed without a
	// verifier (LivePerson's code flow cannot carry one).
	PKCEOptional bool
}

// User is who logs in at /authorize.
type User struct {
	Subject       string
	Name          string
	Email         string
	EmailVerified bool
	AMR           []string
	ACR           string
	// Extra claims added to the ID token.
	Extra map[string]any
}

// Issue is an ID token about to be signed; an OnIssue hook may change any
// of it. KID chooses the signing key (it must be a key of the provider,
// published or retired). Header entries override the signed header (kid
// included); a nil value removes one. Setting Raw skips signing: Raw is
// issued as is.
type Issue struct {
	Header map[string]any
	Claims jwt.MapClaims
	KID    string
	Raw    string
}

// signingKey is one key pair the provider can sign with.
type signingKey struct {
	kid    string
	alg    string
	priv   crypto.Signer
	method jwt.SigningMethod
}

// grant is an issued authorization code.
type grant struct {
	redirectURI string
	challenge   string
	nonce       string
	user        User
	authTime    time.Time
	expires     time.Time
	used        bool
}

// Provider is a running test OpenID Provider.
type Provider struct {
	cfg    Config
	srv    *httptest.Server
	issuer string

	mu            sync.Mutex
	redirects     []string
	keys          map[string]*signingKey // every key it can sign with
	published     []string               // kids in the JWK Set, in order
	current       map[string]string      // alg → kid used by default
	signAlg       string
	users         []User
	cancelNext    int
	codes         map[string]*grant
	rawJWKs       []json.RawMessage
	jwksDown      bool
	discoveryDown bool
	discoveryHook func(doc map[string]any)
	issueHook     func(*Issue)
	tokenHook     func(w http.ResponseWriter, r *http.Request) bool

	tokenRequests    atomic.Int64
	jwksFetches      atomic.Int64
	discoveryFetches atomic.Int64
}

// Start runs a provider until Close.
func Start(cfg Config) (*Provider, error) {
	if cfg.ClientID == "" {
		cfg.ClientID = "bridge"
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = "bridge-secret"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 5 * time.Minute
	}
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = time.Minute
	}
	if cfg.DefaultUser.Subject == "" {
		cfg.DefaultUser = User{
			Subject: "user-42", Name: "Alice Example", Email: "alice@example.test",
			EmailVerified: true, AMR: []string{"pwd", "otp"}, ACR: "urn:example:loa:2",
		}
	}
	if cfg.IssuerPath != "" && !strings.HasPrefix(cfg.IssuerPath, "/") {
		cfg.IssuerPath = "/" + cfg.IssuerPath
	}
	cfg.IssuerPath = strings.TrimSuffix(cfg.IssuerPath, "/")
	p := &Provider{
		cfg:       cfg,
		redirects: slices.Clone(cfg.RedirectURIs),
		keys:      map[string]*signingKey{},
		current:   map[string]string{},
		signAlg:   "RS256",
		codes:     map[string]*grant{},
	}
	if _, err := p.RotateKeys(true); err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+cfg.IssuerPath+"/.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET "+cfg.IssuerPath+"/jwks", p.jwks)
	mux.HandleFunc(cfg.IssuerPath+"/authorize", p.authorize)
	mux.HandleFunc(cfg.IssuerPath+"/token", p.token)
	p.srv = httptest.NewUnstartedServer(mux)
	if cfg.Addr != "" {
		l, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("oidctest: listen: %w", err)
		}
		p.srv.Listener.Close()
		p.srv.Listener = l
	}
	if cfg.TLS {
		p.srv.StartTLS()
	} else {
		p.srv.Start()
	}
	p.issuer = p.srv.URL + cfg.IssuerPath
	return p, nil
}

// NewTest starts a provider that closes when the test ends.
func NewTest(t testing.TB, cfg Config) *Provider {
	t.Helper()
	p, err := Start(cfg)
	if err != nil {
		t.Fatalf("oidctest: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// Close stops the server.
func (p *Provider) Close() { p.srv.Close() }

// Issuer is the issuer identifier (server URL + IssuerPath).
func (p *Provider) Issuer() string { return p.issuer }

// URL is the server's base URL.
func (p *Provider) URL() string { return p.srv.URL }

// Client is an HTTP client that trusts the server (its TLS certificate).
func (p *Provider) Client() *http.Client { return p.srv.Client() }

// ClientID of the registered client.
func (p *Provider) ClientID() string { return p.cfg.ClientID }

// ClientSecret of the registered client.
func (p *Provider) ClientSecret() string { return p.cfg.ClientSecret }

// Identity is a bridge identity configuration for this provider.
func (p *Provider) Identity() config.Identity {
	return config.Identity{
		Type:         "oidc",
		Issuer:       p.issuer,
		ClientID:     p.cfg.ClientID,
		ClientSecret: config.Secret{Ref: "oidctest", Value: p.cfg.ClientSecret},
		Scopes:       []string{"openid", "profile", "email"},
		Algorithms:   []string{"RS256", "ES256"},
		Leeway:       30 * time.Second,
		MaxTokenAge:  10 * time.Minute,
		HTTPTimeout:  5 * time.Second,
	}
}

// AddRedirectURI registers another redirect URI.
func (p *Provider) AddRedirectURI(uri string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.redirects = append(p.redirects, uri)
}

// QueueUser makes u the next user to log in.
func (p *Provider) QueueUser(u User) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users = append(p.users, u)
}

// QueueCancel makes the next /authorize end with error=access_denied, as
// when the user cancels the login.
func (p *Provider) QueueCancel() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cancelNext++
}

// UseAlg chooses the algorithm (RS256 or ES256) of the ID tokens issued.
func (p *Provider) UseAlg(alg string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.current[alg]; !ok {
		return fmt.Errorf("oidctest: no %s key", alg)
	}
	p.signAlg = alg
	return nil
}

// OnIssue sets a hook that may change each ID token before it is signed
// (nil removes it).
func (p *Provider) OnIssue(fn func(*Issue)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.issueHook = fn
}

// OnToken sets a hook run on each token request after it is counted; if it
// returns true it has answered and the provider does nothing more.
func (p *Provider) OnToken(fn func(w http.ResponseWriter, r *http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokenHook = fn
}

// OnDiscovery sets a hook that may change the discovery document.
func (p *Provider) OnDiscovery(fn func(doc map[string]any)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.discoveryHook = fn
}

// SetJWKSDown makes /jwks answer 503 while down.
func (p *Provider) SetJWKSDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.jwksDown = down
}

// SetDiscoveryDown makes discovery answer 503 while down.
func (p *Provider) SetDiscoveryDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.discoveryDown = down
}

// AddRawJWK appends raw (any JSON, e.g. a malformed key) to the JWK Set.
func (p *Provider) AddRawJWK(raw json.RawMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rawJWKs = append(p.rawJWKs, raw)
}

// TokenRequests counts requests to /token.
func (p *Provider) TokenRequests() int64 { return p.tokenRequests.Load() }

// JWKSFetches counts requests to /jwks.
func (p *Provider) JWKSFetches() int64 { return p.jwksFetches.Load() }

// DiscoveryFetches counts requests for the discovery document.
func (p *Provider) DiscoveryFetches() int64 { return p.discoveryFetches.Load() }

// RotateKeys creates a new RSA-2048 and EC P-256 key with new kids, signs
// with them from now on and publishes them; the old keys stay published
// when keepOld (they can still sign via Issue.KID either way). It returns
// the new kids by algorithm.
func (p *Provider) RotateKeys(keepOld bool) (map[string]string, error) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("oidctest: rsa key: %w", err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("oidctest: ec key: %w", err)
	}
	fresh := []*signingKey{
		{kid: "rsa-" + randomID(6), alg: "RS256", priv: rsaKey, method: jwt.SigningMethodRS256},
		{kid: "ec-" + randomID(6), alg: "ES256", priv: ecKey, method: jwt.SigningMethodES256},
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !keepOld {
		p.published = nil
	}
	kids := map[string]string{}
	for _, k := range fresh {
		p.keys[k.kid] = k
		p.published = append(p.published, k.kid)
		p.current[k.alg] = k.kid
		kids[k.alg] = k.kid
	}
	return kids, nil
}

// KID is the kid currently used for alg.
func (p *Provider) KID(alg string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current[alg]
}

// PublicKeyPEM is the PKIX PEM of the public key kid ("" = current RS256),
// the bytes a key-confusion attacker would use as an HMAC secret.
func (p *Provider) PublicKeyPEM(kid string) ([]byte, error) {
	k, err := p.key(kid)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// JWKS is the JWK Set document as served.
func (p *Provider) JWKS() []byte {
	b, _ := p.jwksJSON()
	return b
}

func (p *Provider) key(kid string) (*signingKey, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if kid == "" {
		kid = p.current["RS256"]
	}
	k, ok := p.keys[kid]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoKey, kid)
	}
	return k, nil
}

// Claims is a valid ID token claim set for u as the provider would issue it
// now, for the registered client and nonce.
func (p *Provider) Claims(u User, nonce string) jwt.MapClaims {
	now := p.cfg.Now()
	c := jwt.MapClaims{
		"iss":       p.issuer,
		"sub":       u.Subject,
		"aud":       p.cfg.ClientID,
		"azp":       p.cfg.ClientID,
		"exp":       now.Add(p.cfg.TokenTTL).Unix(),
		"iat":       now.Unix(),
		"auth_time": now.Unix(),
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	if u.Name != "" {
		c["name"] = u.Name
	}
	if u.Email != "" {
		c["email"] = u.Email
		c["email_verified"] = u.EmailVerified
	}
	if len(u.AMR) > 0 {
		c["amr"] = slices.Clone(u.AMR)
	}
	if u.ACR != "" {
		c["acr"] = u.ACR
	}
	for k, v := range u.Extra {
		c[k] = v
	}
	return c
}

// Sign signs claims with the provider's key kid ("" = the current key of
// the signing algorithm), header typ JWT.
func (p *Provider) Sign(claims jwt.MapClaims, kid string) (string, error) {
	if kid == "" {
		p.mu.Lock()
		kid = p.current[p.signAlg]
		p.mu.Unlock()
	}
	return p.sign(&Issue{Header: map[string]any{"typ": "JWT"}, Claims: claims, KID: kid})
}

func (p *Provider) sign(is *Issue) (string, error) {
	k, err := p.key(is.KID)
	if err != nil {
		return "", err
	}
	t := jwt.NewWithClaims(k.method, is.Claims)
	t.Header["kid"] = k.kid
	for h, v := range is.Header {
		if v == nil {
			delete(t.Header, h) // a hook removes a header with a nil value
			continue
		}
		t.Header[h] = v
	}
	return t.SignedString(k.priv)
}

// NoneToken is an unsigned token (alg none) with the given claims, naming
// the current RS256 kid.
func (p *Provider) NoneToken(claims jwt.MapClaims) string {
	t := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
	t.Header["kid"] = p.KID("RS256")
	s, err := t.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		panic(err) // cannot happen with the magic key
	}
	return s
}

// HMACToken is an HS256 token keyed with secret, naming kid (the RS256/HS256
// confusion attack uses the RSA key's PEM or JWK bytes as secret).
func (p *Provider) HMACToken(claims jwt.MapClaims, kid string, secret []byte) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["kid"] = kid
	return t.SignedString(secret)
}

// ForeignToken is signed by a fresh key of alg (RS256 or ES256) the
// provider never published, under kid: a new kid is an "unknown kid" token,
// a published kid a "wrong key" token.
func (p *Provider) ForeignToken(claims jwt.MapClaims, alg, kid string) (string, error) {
	var (
		priv   crypto.Signer
		method jwt.SigningMethod
		err    error
	)
	switch alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
		method = jwt.SigningMethodRS256
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		method = jwt.SigningMethodES256
	default:
		return "", fmt.Errorf("oidctest: unsupported alg %q", alg)
	}
	if err != nil {
		return "", err
	}
	t := jwt.NewWithClaims(method, claims)
	t.Header["kid"] = kid
	return t.SignedString(priv)
}

// Login follows an authorization URL as a browser would up to the redirect
// back to the client, and returns where /authorize redirected (with code
// and state, or error and state).
func (p *Provider) Login(authURL string) (*url.URL, error) {
	c := *p.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(authURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		var e struct {
			Error string `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		return nil, fmt.Errorf("oidctest: authorize: status %d %s", resp.StatusCode, e.Error)
	}
	return url.Parse(resp.Header.Get("Location"))
}

// --- handlers ---

func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	p.discoveryFetches.Add(1)
	p.mu.Lock()
	down, hook := p.discoveryDown, p.discoveryHook
	p.mu.Unlock()
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	doc := map[string]any{
		"issuer":                                p.issuer,
		"authorization_endpoint":                p.issuer + "/authorize",
		"token_endpoint":                        p.issuer + "/token",
		"jwks_uri":                              p.issuer + "/jwks",
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"grant_types_supported":                 []string{"authorization_code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		"scopes_supported":                      []string{"openid", "profile", "email"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic"},
		"code_challenge_methods_supported":      []string{"S256"},
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp",
			"name", "email", "email_verified", "amr", "acr"},
		"authorization_response_iss_parameter_supported": true,
	}
	if hook != nil {
		hook(doc)
	}
	writeJSON(w, http.StatusOK, doc)
}

func (p *Provider) jwksJSON() ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := make([]json.RawMessage, 0, len(p.published)+len(p.rawJWKs))
	for _, kid := range p.published {
		k := p.keys[kid]
		jwk, err := jwkset.NewJWKFromKey(k.priv.Public(), jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{ALG: jwkset.ALG(k.alg), KID: k.kid, USE: jwkset.UseSig},
		})
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(jwk.Marshal())
		if err != nil {
			return nil, err
		}
		keys = append(keys, b)
	}
	keys = append(keys, p.rawJWKs...)
	return json.Marshal(map[string]any{"keys": keys})
}

func (p *Provider) jwks(w http.ResponseWriter, r *http.Request) {
	p.jwksFetches.Add(1)
	p.mu.Lock()
	down := p.jwksDown
	p.mu.Unlock()
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	b, err := p.jwksJSON()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Write(b)
}

// authorize checks the request; errors about the client or redirect URI are
// shown (400), never redirected (RFC 6749 §4.1.2.1).
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	q := r.Form
	redirectURI := q.Get("redirect_uri")
	p.mu.Lock()
	registered := slices.Contains(p.redirects, redirectURI)
	p.mu.Unlock()
	switch {
	case q.Get("client_id") != p.cfg.ClientID:
		oauthError(w, http.StatusBadRequest, "invalid_client")
		return
	case !registered:
		oauthError(w, http.StatusBadRequest, "invalid_redirect_uri")
		return
	}
	state := q.Get("state")
	fail := func(code string) {
		p.redirect(w, r, redirectURI, url.Values{"error": {code}, "state": {state}})
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type")
		return
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		fail("invalid_scope")
		return
	case p.cfg.PKCEOptional && !q.Has("code_challenge") && !q.Has("code_challenge_method"):
	case q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43:
		fail("invalid_request")
		return
	}
	p.mu.Lock()
	if p.cancelNext > 0 {
		p.cancelNext--
		p.mu.Unlock()
		fail("access_denied")
		return
	}
	user := p.cfg.DefaultUser
	if len(p.users) > 0 {
		user, p.users = p.users[0], p.users[1:]
	}
	code := randomID(24)
	now := p.cfg.Now()
	p.codes[code] = &grant{
		redirectURI: redirectURI,
		challenge:   q.Get("code_challenge"),
		nonce:       q.Get("nonce"),
		user:        user,
		authTime:    now,
		expires:     now.Add(p.cfg.CodeTTL),
	}
	p.mu.Unlock()
	p.redirect(w, r, redirectURI, url.Values{"code": {code}, "state": {state}})
}

// redirect sends the browser back with params and iss (RFC 9207).
func (p *Provider) redirect(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values) {
	u, _ := url.Parse(redirectURI)
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	q.Set("iss", p.issuer)
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	p.tokenRequests.Add(1)
	p.mu.Lock()
	hook := p.tokenHook
	p.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || len(r.URL.RawQuery) > 0 {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if r.PostForm.Has("client_secret") || r.PostForm.Has("client_id") && r.PostForm.Get("client_id") != p.cfg.ClientID {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if !p.clientAuthenticated(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="oidctest"`)
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	code := r.PostForm.Get("code")
	verifier := r.PostForm.Get("code_verifier")
	p.mu.Lock()
	g, ok := p.codes[code]
	valid := ok && !g.used && p.cfg.Now().Before(g.expires)
	if ok {
		g.used = true // single use, whatever happens next
	}
	p.mu.Unlock()
	switch {
	case !valid:
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	case r.PostForm.Get("redirect_uri") != g.redirectURI:
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	case g.challenge == "" && p.cfg.PKCEOptional:
		if r.PostForm.Has("code_verifier") {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
	case !pkceOK(verifier, g.challenge):
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	raw, err := p.issue(g)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": randomID(24),
		"token_type":   "Bearer",
		"expires_in":   int(p.cfg.TokenTTL / time.Second),
		"scope":        "openid",
		"id_token":     raw,
	})
}

// clientAuthenticated checks client_secret_basic (RFC 6749 §2.3.1: id and
// secret form-urlencoded inside Basic).
func (p *Provider) clientAuthenticated(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	enc, ok := strings.CutPrefix(h, "Basic ")
	if !ok {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return false
	}
	rawID, rawSecret, ok := strings.Cut(string(b), ":")
	if !ok {
		return false
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil {
		return false
	}
	return id == p.cfg.ClientID &&
		subtle.ConstantTimeCompare([]byte(secret), []byte(p.cfg.ClientSecret)) == 1
}

func pkceOK(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for _, c := range verifier {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~", c)) {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// issue mints the ID token of a grant, through the OnIssue hook.
func (p *Provider) issue(g *grant) (string, error) {
	claims := p.Claims(g.user, g.nonce)
	claims["auth_time"] = g.authTime.Unix()
	p.mu.Lock()
	is := &Issue{
		Header: map[string]any{"typ": "JWT"},
		Claims: claims,
		KID:    p.current[p.signAlg],
	}
	hook := p.issueHook
	p.mu.Unlock()
	if hook != nil {
		hook(is)
	}
	if is.Raw != "" {
		return is.Raw, nil
	}
	return p.sign(is)
}

func oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ErrNoKey is returned when a kid names no key of the provider.
var ErrNoKey = errors.New("oidctest: no such key")
