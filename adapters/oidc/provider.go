// Package oidc is the OpenID Connect identity provider adapter: discovery
// (issuer pinned), authorization-code flow with PKCE S256 and nonce, code
// redemption with client_secret_basic, and hardened ID-token verification
// against the issuer's JWK Set (keyfunc v3 + golang-jwt v5). It satisfies
// bridge.IdentityProvider.
//
// A provider that cannot reach its IdP at start-up is still returned: it
// reports not ready and keeps retrying discovery and the JWK Set in the
// background until it succeeds, so one IdP outage never stops the service.
package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

var (
	_ bridge.IdentityProvider      = (*Provider)(nil)
	_ bridge.CallbackIssuerChecker = (*Provider)(nil)
)

// Defaults for zero config values.
const (
	DefaultHTTPTimeout = 10 * time.Second
	DefaultMaxTokenAge = 10 * time.Minute
	DefaultRetryMin    = time.Second
	DefaultRetryMax    = time.Minute
)

// Options are the run-time dependencies of a Provider.
type Options struct {
	// HTTPClient calls the IdP. Default: a client with cfg.HTTPTimeout,
	// bounded response headers and no redirects. A given client is copied
	// (gets the timeout if it has none, and no redirects unless it sets its
	// own policy). Bodies are always bounded to MaxResponseBytes.
	HTTPClient *http.Client
	// Clock is the time source for token checks (default the system clock).
	Clock bridge.Clock
	// Logger (default slog.Default()). Never gets tokens, codes or secrets.
	Logger *slog.Logger
	// RetryMin and RetryMax bound the backoff between background attempts
	// at discovery and the JWK Set (defaults 1s and 1m).
	RetryMin, RetryMax time.Duration
}

// Provider is one brand's OpenID Provider, as a relying party.
type Provider struct {
	cfg          config.Identity
	issuer       string
	allowHTTP    bool // issuer is http on loopback (development and tests)
	name         string
	clientSecret string
	redirectURL  string
	client       *http.Client
	clock        bridge.Clock
	log          *slog.Logger
	retryMin     time.Duration
	retryMax     time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the background loop ends
	once   sync.Once

	doc     *discovery // written by the one goroutine connecting; then frozen in state
	state   atomic.Pointer[state]
	lastErr atomic.Pointer[error]
}

// state is a connected provider.
type state struct {
	doc      *discovery
	keys     *KeySet
	verifier *TokenVerifier
}

// New builds the provider for cfg, whose redirect URI (the bridge's
// callback, registered exactly at the IdP) is redirectURL; the client secret
// is cfg.ClientSecret.Value.
//
// It tries discovery and the JWK Set once, synchronously (each request
// bounded by cfg.HTTPTimeout). If that fails New still returns the provider:
// Ready reports the error, a warning is logged once, and a background loop
// retries with exponential backoff until it succeeds or ctx is cancelled (or
// Close is called). ctx is the provider's lifetime, not a request's. New
// fails only on invalid configuration.
func New(ctx context.Context, cfg config.Identity, redirectURL string, opts Options) (*Provider, error) {
	cfg, err := normalize(cfg)
	if err != nil {
		return nil, err
	}
	iss, err := checkURL(cfg.Issuer, true)
	if err != nil {
		return nil, fmt.Errorf("oidc: issuer %q: %w", cfg.Issuer, err)
	}
	if iss.RawQuery != "" {
		return nil, fmt.Errorf("oidc: issuer %q: must not carry a query", cfg.Issuer)
	}
	if _, err := checkURL(redirectURL, true); err != nil {
		return nil, fmt.Errorf("oidc: redirect URL %q: %w", redirectURL, err)
	}
	p := &Provider{
		cfg:          cfg,
		issuer:       cfg.Issuer,
		allowHTTP:    iss.Scheme == "http",
		name:         cfg.Name,
		clientSecret: cfg.ClientSecret.Value,
		redirectURL:  redirectURL,
		client:       newHTTPClient(opts.HTTPClient, cfg.HTTPTimeout),
		clock:        opts.Clock,
		log:          opts.Logger,
		retryMin:     opts.RetryMin,
		retryMax:     opts.RetryMax,
		done:         make(chan struct{}),
	}
	if p.name == "" {
		p.name = iss.Host
	}
	if p.clock == nil {
		p.clock = bridge.SystemClock{}
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.retryMin <= 0 {
		p.retryMin = DefaultRetryMin
	}
	if p.retryMax < p.retryMin {
		p.retryMax = max(DefaultRetryMax, p.retryMin)
	}
	p.ctx, p.cancel = context.WithCancel(ctx)

	if err := p.connect(); err != nil {
		p.setErr(err)
		p.log.WarnContext(ctx, "oidc: identity provider not ready; retrying in the background",
			"idp", p.issuer, "error", err)
		go p.retry()
		return p, nil
	}
	close(p.done)
	return p, nil
}

// normalize checks the identity config and fills defaults.
func normalize(cfg config.Identity) (config.Identity, error) {
	var errs []error
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("issuer required"))
	}
	if cfg.ClientID == "" {
		errs = append(errs, errors.New("client_id required"))
	}
	if cfg.ClientSecret.Value == "" {
		errs = append(errs, errors.New("client_secret required (client_secret_basic)"))
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{"RS256"}
	}
	for _, a := range cfg.Algorithms {
		if !slices.Contains(asymmetric, a) {
			errs = append(errs, fmt.Errorf("algorithm %q not allowed (asymmetric only)", a))
		}
	}
	if cfg.Leeway < 0 {
		errs = append(errs, errors.New("negative leeway"))
	}
	if cfg.MaxTokenAge <= 0 {
		cfg.MaxTokenAge = DefaultMaxTokenAge
	}
	if cfg.HTTPTimeout <= 0 {
		cfg.HTTPTimeout = DefaultHTTPTimeout
	}
	scopes := slices.Clone(cfg.Scopes)
	if !slices.Contains(scopes, "openid") {
		scopes = append([]string{"openid"}, scopes...)
	}
	cfg.Scopes = scopes
	if err := errors.Join(errs...); err != nil {
		return cfg, fmt.Errorf("oidc: %w", err)
	}
	return cfg, nil
}

// connect runs discovery (once it succeeded it is kept) and loads the keys.
// Only New and then the background loop call it, never concurrently.
func (p *Provider) connect() error {
	if p.doc == nil {
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.HTTPTimeout)
		d, err := p.discover(ctx)
		cancel()
		if err != nil {
			return err
		}
		p.doc = d
	}
	keys, err := NewKeySet(p.ctx, p.doc.JWKSURI, KeySetOptions{
		Client:      p.client,
		HTTPTimeout: p.cfg.HTTPTimeout,
		Logger:      p.log,
		Name:        p.issuer,
	})
	if err != nil {
		return err
	}
	v, err := NewTokenVerifier(VerifierConfig{
		Issuer:         p.issuer,
		Audience:       p.cfg.ClientID,
		ExtraAudiences: p.cfg.ExtraAudiences,
		ExtraIssuers:   p.cfg.ExtraIssuers,
		Algorithms:     p.cfg.Algorithms,
		Leeway:         p.cfg.Leeway,
		MaxTokenAge:    p.cfg.MaxTokenAge,
		Clock:          p.clock,
	}, keys)
	if err != nil { // config was checked by normalize
		keys.Close()
		return err
	}
	p.state.Store(&state{doc: p.doc, keys: keys, verifier: v})
	p.lastErr.Store(nil)
	return nil
}

// retry reconnects with exponential backoff and jitter until it succeeds
// or the provider's context ends.
func (p *Provider) retry() {
	defer close(p.done)
	wait := p.retryMin
	timer := time.NewTimer(jitter(wait))
	defer timer.Stop()
	for attempt := 2; ; attempt++ {
		select {
		case <-p.ctx.Done():
			return
		case <-timer.C:
		}
		err := p.connect()
		if err == nil {
			p.log.InfoContext(p.ctx, "oidc: identity provider ready", "idp", p.issuer, "attempts", attempt)
			return
		}
		if p.ctx.Err() != nil {
			return
		}
		p.setErr(err)
		p.log.DebugContext(p.ctx, "oidc: identity provider still not ready", "idp", p.issuer, "attempt", attempt, "error", err)
		wait = min(2*wait, p.retryMax)
		timer.Reset(jitter(wait))
	}
}

// jitter spreads d by ±20% so replicas do not retry in step.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + rand.N(2*d/5+1)
}

func (p *Provider) setErr(err error) { p.lastErr.Store(&err) }

// Issuer is the configured (and pinned) issuer.
func (p *Provider) Issuer() string { return p.issuer }

// Name is the IdP's display name (config name, default the issuer host).
func (p *Provider) Name() string { return p.name }

// Ready returns nil once discovery succeeded and the JWK Set holds at
// least one key; otherwise an error wrapping ErrNotReady that says why.
func (p *Provider) Ready(ctx context.Context) error {
	st := p.state.Load()
	if st == nil {
		cause := errors.New("connecting")
		if e := p.lastErr.Load(); e != nil {
			cause = *e
		}
		return fmt.Errorf("%w: %s: %w", ErrNotReady, p.issuer, cause)
	}
	if st.keys.Len(ctx) == 0 {
		return fmt.Errorf("%w: %s: no signing keys loaded", ErrNotReady, p.issuer)
	}
	return nil
}

// Close stops the background work (retry loop, JWK Set refresh) and waits
// for the retry loop to end. Safe to call more than once.
func (p *Provider) Close() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
		if st := p.state.Load(); st != nil {
			st.keys.Close()
		}
	})
}

// AuthURL is the authorization request for one login: response_type code,
// the exact redirect URI, the configured scopes, state, nonce and the S256
// code challenge. It returns "" while discovery has not succeeded (Ready
// reports why); callers must treat "" as unavailable.
func (p *Provider) AuthURL(state, nonce, codeChallenge string) string {
	st := p.state.Load()
	if st == nil {
		return ""
	}
	u := *st.doc.authURL
	q := u.Query()
	q.Set("response_type", "code")
	q.Set("client_id", p.cfg.ClientID)
	q.Set("redirect_uri", p.redirectURL)
	q.Set("scope", strings.Join(p.cfg.Scopes, " "))
	q.Set("state", state)
	q.Set("nonce", nonce)
	q.Set("code_challenge", codeChallenge)
	q.Set("code_challenge_method", "S256")
	u.RawQuery = q.Encode()
	return u.String()
}

// CheckCallbackIssuer applies RFC 9207 to the callback's iss parameter
// (iss is "" when absent): when given it must be the issuer, and when the
// provider advertises authorization_response_iss_parameter_supported it
// must be given. Errors wrap bridge.ErrLoginRejected.
func (p *Provider) CheckCallbackIssuer(iss string) error {
	st := p.state.Load()
	if st == nil {
		return reject("provider not ready", errors.Join(ErrNotReady, ErrUnavailable))
	}
	switch {
	case iss != "" && iss != p.issuer:
		return reject("callback: issuer mismatch", nil)
	case iss == "" && st.doc.IssParameterSupported:
		return reject("callback: iss missing", nil)
	}
	return nil
}

// Verifier is the ID-token verifier, once the provider is ready (nil before).
func (p *Provider) Verifier() *TokenVerifier {
	if st := p.state.Load(); st != nil {
		return st.verifier
	}
	return nil
}

// Redeem exchanges the code at the token endpoint (with the PKCE verifier,
// client_secret_basic), verifies the ID token (nonce included) and maps its
// claims. Errors are *RejectedError wrapping bridge.ErrLoginRejected; IdP
// side failures (not ready, unreachable, 5xx) also wrap ErrUnavailable.
func (p *Provider) Redeem(ctx context.Context, code, verifier, nonce string) (bridge.Identity, error) {
	st := p.state.Load()
	if st == nil {
		return bridge.Identity{}, reject("provider not ready", errors.Join(ErrNotReady, ErrUnavailable))
	}
	switch {
	case code == "":
		return bridge.Identity{}, reject("code missing", nil)
	case !validVerifier(verifier):
		return bridge.Identity{}, reject("invalid code verifier", nil)
	case nonce == "":
		return bridge.Identity{}, reject("nonce missing", nil)
	}
	raw, err := p.exchange(ctx, st.doc.TokenEndpoint, code, verifier, p.redirectURL)
	if err != nil {
		return bridge.Identity{}, err
	}
	claims, err := st.verifier.VerifyIDToken(ctx, raw, nonce)
	if err != nil {
		return bridge.Identity{}, err
	}
	return MapIdentity(claims, p.cfg.Claims, p.name, p.clock.Now())
}

// tokenResponse is the part of RFC 6749 §5.1 / §5.2 the bridge reads.
type tokenResponse struct {
	IDToken string `json:"id_token"`
	Error   string `json:"error"`
}

// exchange redeems the code and returns the raw ID token. verifier is ""
// only for RedeemCode, whose authorization request the bridge did not make.
func (p *Provider) exchange(ctx context.Context, endpoint, code, verifier, redirectURI string) (string, error) {
	form := url.Values{
		"grant_type":   {"authorization_code"},
		"code":         {code},
		"redirect_uri": {redirectURI},
	}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", reject("token endpoint: build request", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic.
	cred := url.QueryEscape(p.cfg.ClientID) + ":" + url.QueryEscape(p.clientSecret)
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cred)))

	resp, err := p.client.Do(req)
	if err != nil {
		// *url.Error names the endpoint only: the code is in the body.
		return "", reject("token endpoint unreachable", fmt.Errorf("%w: %w", ErrUnavailable, err))
	}
	defer drain(resp.Body)
	body, err := readLimited(resp.Body)
	if err != nil {
		return "", reject("token endpoint: response too large or unreadable", err)
	}
	var tr tokenResponse
	jsonErr := json.Unmarshal(body, &tr)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var cause error
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			cause = ErrUnavailable
		}
		code := oauthErrorCode(tr.Error)
		if jsonErr != nil || code == "" {
			return "", reject(fmt.Sprintf("token endpoint: status %d", resp.StatusCode), cause)
		}
		return "", reject(fmt.Sprintf("token endpoint: %s (status %d)", code, resp.StatusCode), cause)
	}
	if jsonErr != nil {
		return "", reject("token endpoint: malformed response", nil)
	}
	if tr.IDToken == "" {
		return "", reject("token endpoint: no id_token", nil)
	}
	return tr.IDToken, nil
}

// oauthErrorCode returns the OAuth error code if it looks like one (RFC
// 6749 error codes are short ASCII words), else "invalid_error_code"; "" if
// there is none. It never echoes free text from the IdP.
func oauthErrorCode(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > 64 {
		return "invalid_error_code"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return "invalid_error_code"
		}
	}
	return s
}
