// Package idpevents receives identity providers' server-to-server login
// events at POST /idp/{brand}/{provider} and turns them into
// bridge.LoginRecord values for correlation with a platform-native step-up:
//
//   - okta: event hooks. Okta signs nothing: the only proof is a static
//     Authorization header over TLS, and user.authentication.sso fires on
//     failed sign-ons too. Records are hints (Verified false), only for
//     outcome SUCCESS.
//   - keycloak: p2-inc keycloak-events webhooks, X-Keycloak-Signature = hex
//     HMAC-SHA256 of the raw body. access.LOGIN events without error.
//   - jwt: any issuer posting a JWT it signed, checked against its JWK Set
//     (the same hardened verifier as ID tokens, without a nonce).
//   - auth0: a JWT posted by an Action: the tenant's JWK Set (as jwt), or a
//     shared HS256 secret (its own verifier; never both for one provider).
//
// Every source authenticates the raw body before parsing it, compares
// secrets in constant time, bounds what it parses, and never logs tokens,
// secrets or personal data. None of them binds a conversation.
package idpevents

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// Options are the run-time dependencies of a source.
type Options struct {
	Logger *slog.Logger
	Clock  bridge.Clock
	// HTTPClient is the base client for JWK Set fetches (tests: their CA).
	HTTPClient *http.Client
	// Provider and Issuer are recorded with logins when the source's config
	// does not say (the brand identity's name and issuer).
	Provider, Issuer string
	// RetryMin and RetryMax bound the backoff of JWK Set loading.
	RetryMin, RetryMax time.Duration
	// UnknownKIDEvery rate-limits the JWK Set refresh an unknown kid
	// triggers (default one per minute).
	UnknownKIDEvery time.Duration
}

// Source is a login-event source; Close releases background work.
type Source interface {
	bridge.LoginEventSource
	Close()
}

// New builds the source for cfg.Type. ctx is its lifetime (JWK Set refresh).
func New(ctx context.Context, cfg config.LoginEvents, o Options) (Source, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = bridge.SystemClock{}
	}
	if cfg.Provider == "" {
		cfg.Provider = o.Provider
	}
	if cfg.Provider == "" {
		cfg.Provider = cfg.Type
	}
	if cfg.Issuer == "" {
		cfg.Issuer = o.Issuer
	}
	if cfg.MaxEventAge <= 0 {
		return nil, errors.New("idpevents: max_event_age must be positive")
	}
	var (
		src Source
		err error
	)
	switch cfg.Type {
	case config.LoginEventsOkta:
		src, err = newOkta(cfg, o)
	case config.LoginEventsKeycloak:
		src, err = newKeycloak(cfg, o)
	case config.LoginEventsJWT:
		src, err = newJWT(ctx, cfg, o)
	case config.LoginEventsAuth0:
		if len(cfg.Secrets) > 0 {
			src, err = newHS256(cfg, o)
		} else {
			if cfg.JWKSURI == "" {
				cfg.JWKSURI = strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/jwks.json"
			}
			src, err = newJWT(ctx, cfg, o)
		}
	default:
		return nil, fmt.Errorf("idpevents: unknown type %q (known: %s)", cfg.Type, strings.Join(config.LoginEventTypes(), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("idpevents %s: %w", cfg.ProviderName(), err)
	}
	return src, nil
}

// secretSet compares a presented secret with several (rotation) in
// constant time: SHA-256 digests have one length whatever the inputs.
type secretSet [][32]byte

func newSecretSet(secrets []config.Secret, minLen int) (secretSet, error) {
	if len(secrets) == 0 {
		return nil, errors.New("at least one secret is required")
	}
	var set secretSet
	for i, s := range secrets {
		if len(s.Value) < minLen {
			return nil, fmt.Errorf("secrets[%d]: at least %d characters required", i, minLen)
		}
		set = append(set, sha256.Sum256([]byte(s.Value)))
	}
	return set, nil
}

func (s secretSet) match(v string) bool {
	got := sha256.Sum256([]byte(v))
	ok := 0
	for _, k := range s {
		ok |= subtle.ConstantTimeCompare(got[:], k[:])
	}
	return ok == 1
}

// minSecretLen is the shortest shared secret accepted (as config checks).
const minSecretLen = 32

// maxEvents bounds the events of one delivery (Okta batches).
const maxEvents = 500

func unauthenticated(reason string) error {
	return fmt.Errorf("%w: %s", bridge.ErrUnauthenticated, reason)
}

func malformed(reason string) error {
	return fmt.Errorf("%w: %s", bridge.ErrMalformed, reason)
}

// decodeJSON decodes a body into v, refusing trailing data. Unknown fields
// are allowed: IdPs add fields over time.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return malformed("body is not the expected JSON")
	}
	if dec.More() {
		return malformed("trailing data after the JSON body")
	}
	return nil
}

// fresh reports whether t is within [now-maxAge-leeway, now+leeway].
func fresh(t, now time.Time, maxAge, leeway time.Duration) bool {
	return !t.IsZero() && !t.Before(now.Add(-maxAge-leeway)) && !t.After(now.Add(leeway))
}

// validSubject mirrors the ID-token rule: 1 to 255 bytes, no control
// characters (the subject is a store key).
func validSubject(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return true
}

// tokenReason is a verifier's reason without the "id token: " prefix: the
// posted tokens are not ID tokens.
func tokenReason(err error) string {
	r := oidc.Reason(err)
	if r == "" {
		return "token: invalid"
	}
	return "token: " + strings.TrimPrefix(r, "id token: ")
}
