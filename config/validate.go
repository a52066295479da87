package config

import (
	"encoding/base64"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
)

var brandID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// allowedAlgorithms are the asymmetric JWS algorithms accepted for ID tokens
// (RFC 8725: an explicit allow-list, no HS*/none).
var allowedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

const minAPIKeyLen = 32

// Validate checks a configuration built in code (Load and Parse already
// validate) and sets c.Warnings. The error is Problems.
func (c *Config) Validate() error {
	col := &collector{}
	c.validate(col)
	c.Warnings = col.warns
	if len(col.errs) > 0 {
		return Problems(col.errs)
	}
	return nil
}

func (c *Config) validate(r *collector) {
	c.Server.validate(r, "server")
	c.Store.validate(r, "store")
	if len(c.Brands) == 0 {
		r.warnf("brands", "no brands: only /healthz, /readyz and /metrics are served")
	}
	first := map[string]int{}
	for i := range c.Brands {
		path := index("brands", i)
		b := &c.Brands[i]
		b.validate(r, path)
		if b.ID == "" {
			continue
		}
		if j, dup := first[b.ID]; dup {
			r.errorf(join(path, "id"), "duplicate brand id %q (also brands[%d])", b.ID, j)
		} else {
			first[b.ID] = i
		}
	}
}

func (s *Server) validate(r *collector, path string) {
	checkURL(r, join(path, "public_url"), s.PublicURL)
	// Routes, pages (form action, stylesheet) and redirect URIs live at the
	// root: a path prefix would break the login pages behind a proxy.
	if u, err := url.Parse(s.PublicURL); err == nil && u.Host != "" && strings.Trim(u.Path, "/") != "" {
		r.errorf(join(path, "public_url"), "must not have a path: the bridge serves its routes at the root of its own host")
	}
	if _, port, err := net.SplitHostPort(s.Listen); err != nil || !validPort(port, true) {
		r.errorf(join(path, "listen"), "expected host:port such as :8080, got %q", s.Listen)
	}
	for i, p := range s.TrustedProxies {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				r.errorf(index(join(path, "trusted_proxies"), i), "expected an IP address or CIDR, got %q", p)
			}
		}
	}
	positive(r, join(path, "read_header_timeout"), s.ReadHeaderTimeout)
	positive(r, join(path, "read_timeout"), s.ReadTimeout)
	positive(r, join(path, "write_timeout"), s.WriteTimeout)
	positive(r, join(path, "idle_timeout"), s.IdleTimeout)
	positive(r, join(path, "shutdown_timeout"), s.ShutdownTimeout)
	if s.MaxBodyBytes <= 0 {
		r.errorf(join(path, "max_body_bytes"), "must be positive")
	}
	if s.MaxHeaderBytes <= 0 {
		r.errorf(join(path, "max_header_bytes"), "must be positive")
	}
	oneOf(r, join(path, "log_format"), s.LogFormat, "json", "text")
	oneOf(r, join(path, "log_level"), s.LogLevel, "debug", "info", "warn", "error")
}

func (s *Store) validate(r *collector, path string) {
	switch s.Driver {
	case "memory":
		if len(s.Redis.Addrs) > 0 {
			r.warnf(join(path, "redis"), "ignored: store.driver is memory")
		}
	case "redis":
		s.Redis.validate(r, join(path, "redis"))
	default:
		r.errorf(join(path, "driver"), "unknown driver %q (known: memory, redis)", s.Driver)
	}
	positive(r, join(path, "session_ttl"), s.SessionTTL)
	positive(r, join(path, "dedupe_ttl"), s.DedupeTTL)
	s.Outbox.validate(r, join(path, "outbox"))
}

func (c *Redis) validate(r *collector, path string) {
	if len(c.Addrs) == 0 {
		r.errorf(join(path, "addrs"), "required for driver redis: one host:port (standalone, or Sentinel with master_name) or several (Cluster)")
	}
	for i, a := range c.Addrs {
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || !validPort(port, false) {
			r.errorf(index(join(path, "addrs"), i), "expected host:port, got %q", a)
		}
	}
	switch {
	case c.DB < 0:
		r.errorf(join(path, "db"), "must not be negative")
	case c.DB != 0 && c.MasterName == "" && len(c.Addrs) > 1:
		r.errorf(join(path, "db"), "Redis Cluster has only database 0")
	}
	if c.PoolSize < 0 {
		r.errorf(join(path, "pool_size"), "must be 0 (the client's default) or more")
	}
	positive(r, join(path, "dial_timeout"), c.DialTimeout)
	positive(r, join(path, "read_timeout"), c.ReadTimeout)
	positive(r, join(path, "write_timeout"), c.WriteTimeout)
	tls := join(path, "tls")
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		r.errorf(tls, "cert_file and key_file go together")
	}
	if !c.TLS.Enabled && (c.TLS.CAFile != "" || c.TLS.CertFile != "" || c.TLS.KeyFile != "" || c.TLS.ServerName != "") {
		r.warnf(join(tls, "enabled"), "false: the other tls settings are ignored")
	}
}

func (o *Outbox) validate(r *collector, path string) {
	if o.Workers < 1 {
		r.errorf(join(path, "workers"), "must be at least 1")
	}
	if o.MaxAttempts < 1 {
		r.errorf(join(path, "max_attempts"), "must be at least 1")
	}
	positive(r, join(path, "min_backoff"), o.MinBackoff)
	positive(r, join(path, "max_backoff"), o.MaxBackoff)
	if o.MinBackoff > 0 && o.MaxBackoff < o.MinBackoff {
		r.errorf(join(path, "max_backoff"), "must not be below min_backoff")
	}
	positive(r, join(path, "call_timeout"), o.CallTimeout)
	positive(r, join(path, "claim_idle"), o.ClaimIdle)
	if o.CallTimeout > 0 && o.ClaimIdle > 0 && o.ClaimIdle <= o.CallTimeout {
		r.errorf(join(path, "claim_idle"), "must exceed call_timeout, or a slow call is claimed by another worker while in flight and delivered twice")
	}
	positive(r, join(path, "retention"), o.RetentionAfter)
}

func (b *Brand) validate(r *collector, path string) {
	id := join(path, "id")
	switch {
	case b.ID == "":
		r.errorf(id, "required")
	case !brandID.MatchString(b.ID):
		r.errorf(id, "%q must match %s (it is part of URLs and store keys)", b.ID, brandID)
	}
	for i, k := range b.APIKeys {
		p := index(join(path, "api_keys"), i)
		switch {
		case unresolved(k):
			// Already reported by resolution.
		case !k.IsSet():
			r.errorf(p, "empty API key")
		case len(k.Value) < minAPIKeyLen:
			r.errorf(p, "too short: an API key needs at least %d characters", minAPIKeyLen)
		}
	}
	if len(b.Platforms) == 0 {
		r.errorf(join(path, "platforms"), "at least one platform is required")
	}
	// The type is the {platform} of /webhooks/{brand}/{platform}.
	first := map[string]int{}
	for i := range b.Platforms {
		p := index(join(path, "platforms"), i)
		b.Platforms[i].validate(r, p)
		t := b.Platforms[i].Type
		if j, dup := first[t]; dup && t != "" {
			r.errorf(join(p, "type"), "duplicate platform type %q (also %s): the type names the webhook path /webhooks/{brand}/%s", t, index(join(path, "platforms"), j), t)
		} else {
			first[t] = i
		}
	}
	b.Identity.validate(r, join(path, "identity"))
	b.StepUp.validate(r, join(path, "step_up"))
}

// platformValidator is implemented by each platform's settings.
type platformValidator interface {
	validate(r *collector, path string)
}

func (p *Platform) validate(r *collector, path string) {
	if _, ok := platformKinds[p.Type]; !ok {
		r.errorf(join(path, "type"), "unknown platform type %q (known: %s)", p.Type, strings.Join(PlatformTypes(), ", "))
		return
	}
	s := p.Settings()
	if s == nil {
		r.errorf(path, "no settings for type %q", p.Type)
		return
	}
	if v, ok := s.(platformValidator); ok {
		v.validate(r, path)
	}
}

func (p *StandardPlatform) validate(r *collector, path string) {
	if len(p.WebhookSecrets) == 0 {
		r.errorf(join(path, "webhook_secrets"), "at least one secret (whsec_…) is required")
	}
	for i, s := range p.WebhookSecrets {
		checkWhsec(r, index(join(path, "webhook_secrets"), i), s)
	}
	secret := join(path, "endpoint_secret")
	switch {
	case p.Endpoint != "":
		checkURL(r, join(path, "endpoint"), p.Endpoint)
		if p.EndpointSecret.Ref == "" {
			r.errorf(secret, "required when endpoint is set")
		} else {
			checkWhsec(r, secret, p.EndpointSecret)
		}
	case p.EndpointSecret.Ref != "" || p.EndpointSecret.IsSet():
		r.warnf(secret, "ignored: no endpoint is set")
	}
	between(r, join(path, "tolerance"), p.Tolerance, 30*time.Second, 15*time.Minute)
}

// checkWhsec checks a Standard Webhooks secret without ever printing it.
func checkWhsec(r *collector, path string, s Secret) {
	if unresolved(s) {
		return
	}
	const want = "must be whsec_ followed by the base64 of 24 to 64 random bytes"
	b64, ok := strings.CutPrefix(s.Value, "whsec_")
	if !ok {
		r.errorf(path, "%s", want)
		return
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	switch {
	case err != nil:
		r.errorf(path, "%s (not valid base64)", want)
	case len(key) < 24 || len(key) > 64:
		r.errorf(path, "%s (got %d bytes)", want, len(key))
	}
}

func (i *Identity) validate(r *collector, path string) {
	if i.Type != "oidc" {
		r.errorf(join(path, "type"), "unknown identity type %q (known: oidc)", i.Type)
	}
	checkURL(r, join(path, "issuer"), i.Issuer)
	if i.ClientID == "" {
		r.errorf(join(path, "client_id"), "required")
	}
	if !unresolved(i.ClientSecret) && !i.ClientSecret.IsSet() {
		r.errorf(join(path, "client_secret"), "required (${ENV} or file:)")
	}
	if !slices.Contains(i.Scopes, "openid") {
		r.errorf(join(path, "scopes"), "must include openid")
	}
	algs := join(path, "algorithms")
	if len(i.Algorithms) == 0 {
		r.errorf(algs, "at least one is required (allowed: %s)", strings.Join(allowedAlgorithms, ", "))
	}
	for j, a := range i.Algorithms {
		p := index(algs, j)
		switch {
		case slices.Contains(allowedAlgorithms, a):
		case strings.EqualFold(a, "none"):
			r.errorf(p, "none accepts unsigned tokens that anyone can forge (RFC 8725 §3.1); allowed: %s", strings.Join(allowedAlgorithms, ", "))
		case strings.HasPrefix(strings.ToUpper(a), "HS"):
			r.errorf(p, "%s is symmetric: whoever holds the client secret can mint ID tokens, and it opens RS/HS key confusion (RFC 8725 §2.1); allowed: %s", a, strings.Join(allowedAlgorithms, ", "))
		default:
			r.errorf(p, "unsupported algorithm %q (allowed: %s)", a, strings.Join(allowedAlgorithms, ", "))
		}
	}
	for j, a := range i.ExtraAudiences {
		if a == "" {
			r.errorf(index(join(path, "extra_audiences"), j), "empty audience")
		}
	}
	for j, a := range i.ExtraIssuers {
		if a == "" || a == i.Issuer {
			r.errorf(index(join(path, "extra_issuers"), j), "must be another spelling of the issuer, not empty or the issuer itself")
		}
	}
	switch {
	case i.Leeway < 0:
		r.errorf(join(path, "leeway"), "must not be negative")
	case i.Leeway > 2*time.Minute:
		r.errorf(join(path, "leeway"), "at most 2m: a larger leeway keeps expired tokens usable")
	}
	positive(r, join(path, "max_token_age"), i.MaxTokenAge)
	positive(r, join(path, "http_timeout"), i.HTTPTimeout)
	claims := join(path, "claims")
	if i.Claims.Subject == "" {
		r.errorf(join(claims, "subject"), "required")
	}
	extra := join(claims, "extra")
	for _, k := range slices.Sorted(maps.Keys(i.Claims.Extra)) {
		if k == "" || i.Claims.Extra[k] == "" {
			r.errorf(join(extra, k), "attribute and claim names must not be empty")
		}
	}
	checkSubjectPolicy(r, claims, i.Claims)
	i.validateLoginEvents(r, path)
}

func (s *StepUp) validate(r *collector, path string) {
	between(r, join(path, "link_ttl"), s.LinkTTL, time.Minute, time.Hour)
	switch s.Binding {
	case BindingConfirmCode:
	case BindingNone:
		r.warnf(join(path, "binding"), "binding none: a forwarded login link can step up the wrong conversation; only for platforms whose own step-up binds the device")
	default:
		r.errorf(join(path, "binding"), "unknown binding %q (known: %s, %s)", s.Binding, BindingConfirmCode, BindingNone)
	}
	between(r, join(path, "code_ttl"), s.CodeTTL, time.Minute, 30*time.Minute)
	between(r, join(path, "login_window"), s.LoginWindow, time.Minute, 24*time.Hour)
	if s.CodeLength < 4 || s.CodeLength > 10 {
		r.errorf(join(path, "code_length"), "must be between 4 and 10, got %d", s.CodeLength)
	}
	if s.CodeAttempts < 1 || s.CodeAttempts > 10 {
		r.errorf(join(path, "code_attempts"), "must be between 1 and 10, got %d", s.CodeAttempts)
	}
	if s.MaxLinks < 1 {
		r.errorf(join(path, "max_links"), "must be at least 1")
	}
	for i, c := range s.Channels {
		if c == "" {
			r.errorf(index(join(path, "channels"), i), "empty channel")
		}
	}
	checkLinkMessage(r, join(path, "link_message"), s.LinkMessage)
	if s.NotifyAgents && s.NotifyMessage == "" {
		r.errorf(join(path, "notify_message"), "required while notify_agents is true")
	}
	checkTemplate(r, join(path, "notify_message"), s.NotifyMessage)
	checkTemplate(r, join(path, "consumer_message"), s.ConsumerMessage)
}

func checkTemplate(r *collector, path, text string) *template.Template {
	t, err := template.New(path[strings.LastIndex(path, ".")+1:]).Parse(text)
	if err != nil {
		r.errorf(path, "not a valid text/template: %v", err)
		return nil
	}
	return t
}

// checkLinkMessage renders the template as the bridge does (over
// struct{URL string}): it must use .URL and nothing else.
func checkLinkMessage(r *collector, path, text string) {
	if text == "" {
		r.errorf(path, "required; it must contain {{.URL}}")
		return
	}
	t := checkTemplate(r, path, text)
	if t == nil {
		return
	}
	const probe = "https://probe.invalid/login"
	var b strings.Builder
	if err := t.Execute(&b, struct{ URL string }{probe}); err != nil {
		r.errorf(path, "only {{.URL}} is available: %v", err)
		return
	}
	if !strings.Contains(b.String(), probe) {
		r.errorf(path, "must contain {{.URL}}")
	}
}

// checkURL requires an absolute http(s) URL without query, fragment or
// credentials, https unless the host is loopback. The URL is not echoed: it
// could carry credentials.
func checkURL(r *collector, path, raw string) {
	if raw == "" {
		r.errorf(path, "required")
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		r.errorf(path, "not a valid URL")
	case !u.IsAbs() || u.Host == "":
		r.errorf(path, "must be an absolute URL such as https://host/path")
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		r.errorf(path, "must use https (http only for a loopback host: localhost, 127.0.0.0/8, ::1)")
	case u.Scheme != "https" && u.Scheme != "http":
		r.errorf(path, "must use https, not %s", u.Scheme)
	case u.User != nil:
		r.errorf(path, "must not contain credentials")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		r.errorf(path, "must not have a query or fragment")
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validPort(port string, zeroOK bool) bool {
	n, err := strconv.Atoi(port)
	return err == nil && n <= 65535 && (n > 0 || zeroOK && n == 0)
}

// unresolved reports a secret whose reference failed to resolve; resolution
// has reported it already.
func unresolved(s Secret) bool { return s.Ref != "" && !s.IsSet() }

func positive(r *collector, path string, d time.Duration) {
	if d <= 0 {
		r.errorf(path, "must be positive")
	}
}

func between(r *collector, path string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		r.errorf(path, "must be between %s and %s, got %s", shortDuration(lo), shortDuration(hi), shortDuration(d))
	}
}

func oneOf(r *collector, path, v string, known ...string) {
	if !slices.Contains(known, v) {
		r.errorf(path, "unknown value %q (known: %s)", v, strings.Join(known, ", "))
	}
}

// shortDuration prints 10m rather than 10m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
