package oidc

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// asymmetric are the JWS algorithms a TokenVerifier accepts in its allow-list.
var asymmetric = []string{
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA",
}

// maxTokenBytes bounds the compact JWT handed to the parser.
const maxTokenBytes = 256 << 10

// Keys looks up verification keys; *KeySet and keyfunc.Keyfunc satisfy it.
type Keys interface {
	KeyfuncCtx(ctx context.Context) jwt.Keyfunc
}

// VerifierConfig is what a TokenVerifier checks.
type VerifierConfig struct {
	// Issuer must equal iss exactly (or be one of ExtraIssuers).
	Issuer string
	// ExtraIssuers are other exact spellings of the same issuer that the IdP
	// puts in iss (Google: "accounts.google.com" besides
	// "https://accounts.google.com"). jwt.WithIssuer takes one value only.
	ExtraIssuers []string
	// Audience (the client id) must be in aud; azp, when present, must
	// equal it, and is required when aud has several values.
	Audience string
	// ExtraAudiences may also appear in aud; any other value is rejected.
	ExtraAudiences []string
	// Algorithms allowed in the token header; asymmetric only (default RS256).
	Algorithms []string
	// Leeway for exp, nbf and iat (clock skew).
	Leeway time.Duration
	// MaxTokenAge bounds now - iat; iat is required. Must be > 0.
	MaxTokenAge time.Duration
	// Clock is the time source (default the system clock).
	Clock bridge.Clock
	// LookupTimeout bounds the key lookup, including a refresh for an
	// unknown kid (default 5s).
	LookupTimeout time.Duration
}

// TokenVerifier verifies signed JWTs (ID tokens, and other JWTs an
// identity provider signs with its published keys) by RFC 8725 and OIDC
// Core §3.1.3.7: allow-listed asymmetric algorithms, signature by a key of
// the issuer's JWK Set, exact iss, aud (no untrusted extras) and azp, exp
// required, nbf, iat required, not in the future and not older than
// MaxTokenAge, sub present, no unknown crit header. jku, x5u, jwk and x5c
// header parameters are never used to find keys.
type TokenVerifier struct {
	cfg    VerifierConfig
	keys   Keys
	parser *jwt.Parser
}

// NewTokenVerifier checks cfg and returns a verifier using keys.
func NewTokenVerifier(cfg VerifierConfig, keys Keys) (*TokenVerifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("token verifier: issuer required")
	}
	if cfg.Audience == "" {
		return nil, errors.New("token verifier: audience required")
	}
	if keys == nil {
		return nil, errors.New("token verifier: keys required")
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{"RS256"}
	}
	for _, a := range cfg.Algorithms {
		if !slices.Contains(asymmetric, a) {
			return nil, fmt.Errorf("token verifier: algorithm %q not allowed (asymmetric only: %s)", a, strings.Join(asymmetric, ", "))
		}
	}
	if cfg.Leeway < 0 {
		return nil, errors.New("token verifier: negative leeway")
	}
	if cfg.MaxTokenAge <= 0 {
		return nil, errors.New("token verifier: max token age required")
	}
	if cfg.Clock == nil {
		cfg.Clock = bridge.SystemClock{}
	}
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = 5 * time.Second
	}
	if slices.Contains(cfg.ExtraIssuers, "") {
		return nil, errors.New("token verifier: empty extra issuer")
	}
	cfg.Algorithms = slices.Clone(cfg.Algorithms)
	cfg.ExtraAudiences = slices.Clone(cfg.ExtraAudiences)
	cfg.ExtraIssuers = slices.Clone(cfg.ExtraIssuers)
	return &TokenVerifier{
		cfg:  cfg,
		keys: keys,
		parser: jwt.NewParser(
			// iss is checked in check: it may have several exact spellings.
			jwt.WithValidMethods(cfg.Algorithms),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(cfg.Clock.Now),
			jwt.WithJSONNumber(),
			jwt.WithStrictDecoding(),
		),
	}, nil
}

// VerifyIDToken verifies an ID token issued for the login whose nonce is
// given: everything Verify checks, plus nonce present and equal.
func (v *TokenVerifier) VerifyIDToken(ctx context.Context, raw, nonce string) (jwt.MapClaims, error) {
	if nonce == "" {
		return nil, reject("id token: no nonce expected", nil)
	}
	claims, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	got, ok := claims["nonce"].(string)
	if !ok || got == "" {
		return nil, reject("id token: nonce missing", nil)
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(nonce)) != 1 {
		return nil, reject("id token: nonce mismatch", nil)
	}
	return claims, nil
}

// Verify verifies a JWT that carries no nonce. Errors are *RejectedError
// (wrapping bridge.ErrLoginRejected) with a reason such as
// "id token: invalid audience"; they never contain the token.
func (v *TokenVerifier) Verify(ctx context.Context, raw string) (jwt.MapClaims, error) {
	if raw == "" || len(raw) > maxTokenBytes {
		return nil, reject("id token: malformed", nil)
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.LookupTimeout)
	defer cancel()
	claims := jwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(raw, claims, v.keyfunc(ctx))
	if err != nil {
		return nil, reject(v.reason(tok, claims, err), err)
	}
	if err := v.check(claims); err != nil {
		return nil, err
	}
	return claims, nil
}

var (
	errCrit = errors.New("unsupported critical header parameter")
	errTyp  = errors.New("unexpected token type")
)

// keyfunc refuses headers the bridge does not understand, then looks the
// key up (kid and alg only; keyfunc checks the JWK's alg against the token's).
func (v *TokenVerifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	lookup := v.keys.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			return nil, errCrit
		}
		if typ, ok := t.Header["typ"]; ok {
			s, _ := typ.(string)
			if !strings.EqualFold(s, "JWT") && !strings.EqualFold(s, "application/jwt") {
				return nil, errTyp
			}
		}
		return lookup(t)
	}
}

// reason turns a parser error into a short, fixed reason.
func (v *TokenVerifier) reason(tok *jwt.Token, claims jwt.MapClaims, err error) string {
	switch {
	case errors.Is(err, errCrit):
		return "id token: unsupported critical header"
	case errors.Is(err, errTyp):
		return "id token: unexpected type"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "id token: malformed"
	case tok != nil && (tok.Method == nil || !slices.Contains(v.cfg.Algorithms, tok.Method.Alg())):
		return "id token: algorithm not allowed"
	case errors.Is(err, ErrNotReady):
		return "id token: signing keys not loaded"
	case errors.Is(err, jwkset.ErrKeyNotFound):
		return "id token: unknown signing key"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "id token: no usable signing key"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "id token: invalid signature"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "id token: expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "id token: not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "id token: issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "id token: invalid issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "id token: invalid audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		for _, c := range []string{"exp", "aud"} {
			if _, ok := claims[c]; !ok {
				return "id token: " + c + " missing"
			}
		}
		return "id token: required claim missing"
	case errors.Is(err, jwt.ErrInvalidType):
		return "id token: invalid claim type"
	}
	return "id token: invalid"
}

// maxSubjectBytes bounds sub (OIDC Core §2: at most 255 ASCII characters);
// the subject becomes part of store keys.
const maxSubjectBytes = 255

// check runs what the jwt parser does not: iss (one of several exact
// spellings), iat required and not too old, no untrusted audience, azp, sub.
func (v *TokenVerifier) check(claims jwt.MapClaims) error {
	iss, present := claims["iss"]
	if !present {
		return reject("id token: iss missing", nil)
	}
	if s, ok := iss.(string); !ok || (s != v.cfg.Issuer && !slices.Contains(v.cfg.ExtraIssuers, s)) {
		return reject("id token: invalid issuer", nil)
	}
	iat, err := claims.GetIssuedAt()
	if err != nil || iat == nil {
		return reject("id token: iat missing", nil)
	}
	if v.cfg.Clock.Now().Sub(iat.Time) > v.cfg.MaxTokenAge+v.cfg.Leeway {
		return reject("id token: too old", nil)
	}
	aud, err := claims.GetAudience()
	if err != nil || len(aud) == 0 {
		return reject("id token: invalid audience", err)
	}
	for _, a := range aud {
		if a != v.cfg.Audience && !slices.Contains(v.cfg.ExtraAudiences, a) {
			return reject("id token: untrusted audience", nil)
		}
	}
	azp, present := claims["azp"]
	switch {
	case present:
		if s, ok := azp.(string); !ok || s != v.cfg.Audience {
			return reject("id token: azp is not the client", nil)
		}
	case len(aud) > 1:
		return reject("id token: azp missing with several audiences", nil)
	}
	sub, ok := claims["sub"].(string)
	if !ok || sub == "" {
		return reject("id token: sub missing", nil)
	}
	if !validSubject(sub) {
		return reject("id token: invalid sub", nil)
	}
	return nil
}

// validSubject reports whether s is a usable identity key: 1 to 255 bytes,
// no control characters (they would corrupt store keys and logs).
func validSubject(s string) bool {
	if s == "" || len(s) > maxSubjectBytes {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// emailLikeClaims can be reassigned to another person.
var emailLikeClaims = []string{"email", "upn", "preferred_username", "unique_name"}

// maxClaimBytes bounds one mapped extra claim value.
const maxClaimBytes = 1024

// MapIdentity turns verified claims into a bridge.Identity by the claim
// mapping: subject (default sub; must be non-empty), name, email with
// email_verified (bool or "true"), amr, acr, auth_time, and the extra
// attributes (scalars only, stringified; objects, arrays and values longer
// than 1 KiB are skipped). provider is the IdP's display name.
//
// The subject is the identity key: with m.Tenant it is "tenant:subject"
// (Entra: tid and oid, since oid is unique per tenant only); an email-like
// claim (email, upn, preferred_username, unique_name, or the mapped email
// claim) is refused as subject unless m.EmailSubject is set and the token
// says email_verified true, because such values are reassigned.
func MapIdentity(claims jwt.MapClaims, m config.ClaimMapping, provider string, now time.Time) (bridge.Identity, error) {
	subClaim := or(m.Subject, "sub")
	sub, ok := scalar(claims[subClaim])
	if !ok || sub == "" {
		return bridge.Identity{}, reject("id token: subject claim "+strconv.Quote(subClaim)+" missing", nil)
	}
	emailClaim := or(m.Email, "email")
	emailVerified := false
	switch ev := claims["email_verified"].(type) {
	case bool:
		emailVerified = ev
	case string:
		emailVerified = strings.EqualFold(ev, "true")
	}
	if subClaim == emailClaim || slices.Contains(emailLikeClaims, subClaim) {
		switch {
		case !m.EmailSubject:
			return bridge.Identity{}, reject("id token: email-like subject claim not allowed", nil)
		case !emailVerified:
			return bridge.Identity{}, reject("id token: email subject not verified", nil)
		}
	}
	if m.Tenant != "" {
		tenant, ok := claims[m.Tenant].(string)
		if !ok || tenant == "" {
			return bridge.Identity{}, reject("id token: tenant claim "+strconv.Quote(m.Tenant)+" missing", nil)
		}
		sub = tenant + ":" + sub
	}
	if !validSubject(sub) {
		return bridge.Identity{}, reject("id token: invalid subject", nil)
	}
	iss, _ := claims["iss"].(string)
	id := bridge.Identity{
		Provider:   provider,
		Issuer:     iss,
		Subject:    sub,
		VerifiedAt: now,
	}
	id.Name, _ = claims[or(m.Name, "name")].(string)
	id.Email, _ = claims[emailClaim].(string)
	id.EmailVerified = emailVerified && id.Email != ""
	switch amr := claims["amr"].(type) {
	case []any:
		for _, a := range amr {
			if s, ok := a.(string); ok && s != "" {
				id.AMR = append(id.AMR, s)
			}
		}
	case string: // not per spec, but seen
		if amr != "" {
			id.AMR = []string{amr}
		}
	}
	id.ACR, _ = claims["acr"].(string)
	if t, ok := numericDate(claims["auth_time"]); ok {
		id.AuthTime = t
	}
	for attr, claim := range m.Extra {
		if s, ok := scalar(claims[claim]); ok && s != "" && len(s) <= maxClaimBytes {
			if id.Claims == nil {
				id.Claims = make(map[string]string, len(m.Extra))
			}
			id.Claims[attr] = s
		}
	}
	return id, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// scalar stringifies a JSON scalar (string, number, bool); objects, arrays
// and null are not scalars.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// numericDate reads a NumericDate claim (seconds since the epoch).
func numericDate(v any) (time.Time, bool) {
	var f float64
	switch x := v.(type) {
	case json.Number:
		var err error
		if f, err = x.Float64(); err != nil {
			return time.Time{}, false
		}
	case float64:
		f = x
	default:
		return time.Time{}, false
	}
	if f <= 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), true
}
