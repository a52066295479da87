package config

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Login-event provider types: an IdP announcing logins server to server at
// POST /idp/{brand}/{name}.
const (
	LoginEventsOkta     = "okta"     // Okta event hook: static Authorization header, unsigned body (hints only)
	LoginEventsAuth0    = "auth0"    // a JWT posted by an Auth0 Action: tenant JWKS or a shared HS256 secret
	LoginEventsKeycloak = "keycloak" // p2-inc keycloak-events webhook: hex HMAC in X-Keycloak-Signature
	LoginEventsJWT      = "jwt"      // any issuer posting a JWT it signed, checked against its JWKS
)

var loginEventTypes = []string{LoginEventsAuth0, LoginEventsJWT, LoginEventsKeycloak, LoginEventsOkta}

// LoginEventTypes lists the known login-event provider types, sorted.
func LoginEventTypes() []string { return slices.Clone(loginEventTypes) }

var loginEventName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// minEventSecretLen bounds shared secrets (HMAC keys, the Okta header, the
// Auth0 HS256 secret): 32 characters of random text (RFC 8725 §3.5).
const minEventSecretLen = 32

// LoginEvents is one login-event provider of a brand's IdP. Which keys
// apply depends on Type; a key another type uses is an error.
type LoginEvents struct {
	// Type is okta, auth0, keycloak or jwt.
	Type string `yaml:"type"`
	// Name is the {provider} path segment (default: the type).
	Name string `yaml:"name"`
	// Provider is the IdP name recorded with the login and shown to agents
	// (default: the brand identity's name).
	Provider string `yaml:"provider"`

	// Secrets (okta: the Authorization header value Okta sends; keycloak:
	// the HMAC shared secret; auth0: the HS256 Action secret). Several allow
	// rotation; any one verifies.
	Secrets []Secret `yaml:"secrets"`

	// Issuer (auth0, jwt) must equal iss; for okta and keycloak it is only
	// recorded with the login (default: the brand identity's issuer).
	Issuer string `yaml:"issuer"`
	// JWKSURI (auth0, jwt) is where the issuer's public keys are; auth0
	// defaults to {issuer}/.well-known/jwks.json when no secret is set.
	JWKSURI string `yaml:"jwks_uri"`
	// Audience (auth0, jwt) must be in aud; for auth0 with a secret it is
	// checked only when set (Action-encoded tokens carry no aud).
	Audience string `yaml:"audience"`
	// Algorithms (jwt, auth0 with JWKS) allowed in the header; asymmetric only.
	Algorithms []string `yaml:"algorithms"`
	// Claims maps the token's claims (auth0, jwt) to the identity.
	Claims ClaimMapping `yaml:"claims"`

	// AppInstances (okta): user.authentication.sso events count only for
	// these app instance ids (target[] AppInstance); empty = any app.
	AppInstances []string `yaml:"app_instances"`
	// Realm (keycloak) the events must come from (realmId); required.
	Realm string `yaml:"realm"`
	// ClientIDs (keycloak): LOGIN events count only for these clients;
	// empty = any client of the realm.
	ClientIDs []string `yaml:"client_ids"`

	// MaxEventAge: an event (or token iat) older than this is ignored.
	MaxEventAge time.Duration `yaml:"max_event_age"`
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration `yaml:"leeway"`
	// HTTPTimeout bounds each JWKS fetch.
	HTTPTimeout time.Duration `yaml:"http_timeout"`
}

func (e *LoginEvents) setDefaults() {
	// A login event is useful only while the platform's swap may follow.
	e.MaxEventAge = 10 * time.Minute
	e.Leeway = 30 * time.Second
	e.HTTPTimeout = 10 * time.Second
	e.Algorithms = []string{"RS256", "ES256"}
	e.Claims = ClaimMapping{Subject: "sub", Name: "name", Email: "email"}
}

// ProviderName is the {provider} path segment of the source.
func (e *LoginEvents) ProviderName() string {
	if e.Name != "" {
		return e.Name
	}
	return e.Type
}

func (e *LoginEvents) validate(r *collector, path string) {
	if !slices.Contains(loginEventTypes, e.Type) {
		r.errorf(join(path, "type"), "unknown login event type %q (known: %s)", e.Type, strings.Join(loginEventTypes, ", "))
		return
	}
	if e.Name != "" && !loginEventName.MatchString(e.Name) {
		r.errorf(join(path, "name"), "%q must match %s (it is part of the URL)", e.Name, loginEventName)
	}
	// unused reports keys set for a type that ignores them: a setting that
	// silently does nothing is a security setting that is not there.
	unused := func(key string, set bool) {
		if set {
			r.errorf(join(path, key), "not used by type %s", e.Type)
		}
	}
	jwtKeys := func(used bool) {
		if used {
			return
		}
		unused("jwks_uri", e.JWKSURI != "")
		unused("audience", e.Audience != "")
	}
	switch e.Type {
	case LoginEventsOkta:
		e.checkSecrets(r, path, true)
		jwtKeys(false)
		unused("realm", e.Realm != "")
		unused("client_ids", len(e.ClientIDs) > 0)
	case LoginEventsKeycloak:
		e.checkSecrets(r, path, true)
		jwtKeys(false)
		unused("app_instances", len(e.AppInstances) > 0)
		if e.Realm == "" {
			r.errorf(join(path, "realm"), "required: the realm (realmId) the events come from")
		}
	case LoginEventsJWT:
		unused("secrets", len(e.Secrets) > 0)
		unused("app_instances", len(e.AppInstances) > 0)
		unused("realm", e.Realm != "")
		unused("client_ids", len(e.ClientIDs) > 0)
		checkURL(r, join(path, "issuer"), e.Issuer)
		checkURL(r, join(path, "jwks_uri"), e.JWKSURI)
		if e.Audience == "" {
			r.errorf(join(path, "audience"), "required: the value the issuer puts in aud for the bridge")
		}
		e.checkAlgorithms(r, path)
		e.checkClaims(r, path)
	case LoginEventsAuth0:
		unused("app_instances", len(e.AppInstances) > 0)
		unused("realm", e.Realm != "")
		unused("client_ids", len(e.ClientIDs) > 0)
		if len(e.Secrets) > 0 {
			// encodeToken puts the tenant host in iss: a URL is not required.
			if e.Issuer == "" {
				r.errorf(join(path, "issuer"), "required: the exact iss of the Action's tokens (the tenant host)")
			}
			// One algorithm per key (RFC 8725 §3.1): HS256 with the secret,
			// never the tenant's keys as well.
			e.checkSecrets(r, path, false)
			if e.JWKSURI != "" {
				r.errorf(join(path, "jwks_uri"), "set either secrets (HS256) or jwks_uri (the tenant's keys), never both")
			}
		} else {
			checkURL(r, join(path, "issuer"), e.Issuer)
			if e.JWKSURI != "" {
				checkURL(r, join(path, "jwks_uri"), e.JWKSURI)
			}
			if e.Audience == "" {
				r.errorf(join(path, "audience"), "required with the tenant's keys: the value the Action puts in aud for the bridge")
			}
			e.checkAlgorithms(r, path)
		}
		e.checkClaims(r, path)
	}
	positive(r, join(path, "max_event_age"), e.MaxEventAge)
	if e.MaxEventAge > 24*time.Hour {
		r.errorf(join(path, "max_event_age"), "at most 24h: a login event is only useful while the platform's swap may follow")
	}
	if e.Leeway < 0 || e.Leeway > 2*time.Minute {
		r.errorf(join(path, "leeway"), "must be between 0 and 2m: a larger leeway keeps expired tokens usable")
	}
	positive(r, join(path, "http_timeout"), e.HTTPTimeout)
}

func (e *LoginEvents) checkSecrets(r *collector, path string, required bool) {
	p := join(path, "secrets")
	if required && len(e.Secrets) == 0 {
		r.errorf(p, "at least one secret is required")
	}
	for i, s := range e.Secrets {
		switch {
		case unresolved(s):
		case !s.IsSet():
			r.errorf(index(p, i), "empty secret")
		case len(s.Value) < minEventSecretLen:
			r.errorf(index(p, i), "too short: at least %d random characters", minEventSecretLen)
		}
	}
}

func (e *LoginEvents) checkAlgorithms(r *collector, path string) {
	p := join(path, "algorithms")
	if len(e.Algorithms) == 0 {
		r.errorf(p, "at least one is required (allowed: %s)", strings.Join(allowedAlgorithms, ", "))
	}
	for i, a := range e.Algorithms {
		if !slices.Contains(allowedAlgorithms, a) {
			r.errorf(index(p, i), "%q not allowed (asymmetric only: %s)", a, strings.Join(allowedAlgorithms, ", "))
		}
	}
}

func (e *LoginEvents) checkClaims(r *collector, path string) {
	p := join(path, "claims")
	if e.Claims.Subject == "" {
		r.errorf(join(p, "subject"), "required")
	}
	checkSubjectPolicy(r, p, e.Claims)
	extra := join(p, "extra")
	for _, k := range slices.Sorted(maps.Keys(e.Claims.Extra)) {
		if k == "" || e.Claims.Extra[k] == "" {
			r.errorf(join(extra, k), "attribute and claim names must not be empty")
		}
	}
}

// emailLikeClaims can be reassigned to another person; they are an identity
// key only with claims.email_subject (and email_verified in the token).
var emailLikeClaims = []string{"email", "upn", "preferred_username", "unique_name"}

// checkSubjectPolicy refuses a reassignable identity key unless asked for.
func checkSubjectPolicy(r *collector, path string, m ClaimMapping) {
	if (slices.Contains(emailLikeClaims, m.Subject) || m.Subject == m.Email && m.Email != "") && !m.EmailSubject {
		r.errorf(join(path, "subject"), "%q can be reassigned to another person; use a stable id (sub, oid) or set email_subject: true (then email_verified must be true in every token)", m.Subject)
	}
	if m.Tenant != "" && m.Tenant == m.Subject {
		r.errorf(join(path, "tenant"), "must differ from subject")
	}
}

// validateLoginEvents checks a brand identity's login_events list.
func (i *Identity) validateLoginEvents(r *collector, path string) {
	p := join(path, "login_events")
	first := map[string]int{}
	for j := range i.LoginEvents {
		e := &i.LoginEvents[j]
		ep := index(p, j)
		e.validate(r, ep)
		n := e.ProviderName()
		if k, dup := first[n]; dup {
			r.errorf(join(ep, "name"), "duplicate provider name %q (also %s): it names the path /idp/{brand}/%s", n, index(p, k), n)
		} else {
			first[n] = j
		}
	}
}
