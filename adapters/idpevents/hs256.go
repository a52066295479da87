package idpevents

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// hs256 verifies tokens an Auth0 Action encoded with a shared secret
// (api.redirect.encodeToken: HS256, sub, iss, exp, plus its payload). It is
// a verifier of its own with its own keys: one algorithm per key (RFC 8725
// §3.1), so no RS/HS confusion with any JWK Set is possible. Checks: alg
// HS256 only; no crit; typ JWT if present; iss exact; exp required and not
// passed; iat required (encodeToken signs with jsonwebtoken, which sets
// it), not in the future, not older than max_event_age; nbf; aud exact
// when configured.
type hs256 struct {
	cfg    config.LoginEvents
	keys   jwt.VerificationKeySet
	parser *jwt.Parser
	clock  bridge.Clock
}

var _ bridge.LoginEventSource = (*hs256)(nil)

func newHS256(cfg config.LoginEvents, o Options) (*hs256, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("issuer required")
	}
	if cfg.JWKSURI != "" {
		return nil, errors.New("set either secrets (HS256) or jwks_uri, never both")
	}
	h := &hs256{cfg: cfg, clock: o.Clock}
	for _, s := range cfg.Secrets {
		if len(s.Value) < minSecretLen {
			return nil, errors.New("secrets: at least 32 random characters required (RFC 8725 §3.5)")
		}
		h.keys.Keys = append(h.keys.Keys, []byte(s.Value))
	}
	if len(h.keys.Keys) == 0 {
		return nil, errors.New("at least one secret is required")
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(o.Clock.Now),
		jwt.WithJSONNumber(),
		jwt.WithStrictDecoding(),
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	h.parser = jwt.NewParser(opts...)
	return h, nil
}

func (*hs256) Close() {}

var errHeader = errors.New("unsupported header")

// Parse verifies the posted token and records its subject.
func (h *hs256) Parse(_ context.Context, req bridge.WebhookRequest) ([]bridge.LoginRecord, error) {
	raw, err := postedToken(req.Body)
	if err != nil {
		return nil, err
	}
	claims := jwt.MapClaims{}
	_, err = h.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			return nil, errHeader
		}
		if typ, ok := t.Header["typ"]; ok {
			if s, _ := typ.(string); !strings.EqualFold(s, "JWT") {
				return nil, errHeader
			}
		}
		return h.keys, nil
	})
	if err != nil {
		return nil, unauthenticated(hsReason(err))
	}
	if err := h.check(claims); err != nil {
		return nil, err
	}
	return recordFromClaims(claims, h.cfg, h.clock)
}

func (h *hs256) check(claims jwt.MapClaims) error {
	// exp is required and checked by the parser; how far away it is does
	// not matter: iat bounds the token's use to max_event_age (encodeToken's
	// default lifetime, 900 s, may well exceed that).
	now := h.clock.Now()
	iat, err := claims.GetIssuedAt()
	if err != nil || iat == nil {
		return unauthenticated("token: iat missing")
	}
	if now.Sub(iat.Time) > h.cfg.MaxEventAge+h.cfg.Leeway {
		return unauthenticated("token: too old")
	}
	if h.cfg.Audience != "" {
		aud, _ := claims.GetAudience()
		if slices.ContainsFunc(aud, func(a string) bool { return a != h.cfg.Audience }) {
			return unauthenticated("token: untrusted audience")
		}
	}
	if sub, ok := claims["sub"].(string); !ok || !validSubject(sub) {
		return unauthenticated("token: invalid sub")
	}
	return nil
}

func hsReason(err error) string {
	switch {
	case errors.Is(err, errHeader):
		return "token: unsupported header"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "token: malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// Also an alg other than HS256: WithValidMethods reports it so.
		return "token: invalid signature or algorithm"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token: unverifiable"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token: expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token: not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token: issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "token: invalid issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token: invalid audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token: required claim missing"
	}
	return "token: invalid"
}
