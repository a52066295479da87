package idpevents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// maxTokenBytes bounds a posted token (the verifier bounds it too).
const maxTokenBytes = 64 << 10

// postedToken extracts the token from a body that is either the compact
// JWT itself (Content-Type application/jwt or text/plain) or a JSON object
// {"token": "..."}, as an Auth0 Action's axios.post would send it.
func postedToken(body []byte) (string, error) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return "", malformed("empty body")
	}
	if b[0] == '{' {
		var v struct {
			Token string `json:"token"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil || dec.More() {
			return "", malformed(`body must be a compact JWT or {"token": "..."}`)
		}
		b = []byte(v.Token)
	}
	if len(b) == 0 || len(b) > maxTokenBytes || bytes.Count(b, []byte(".")) != 2 {
		return "", malformed("not a compact JWS")
	}
	return string(b), nil
}

// jwtSource verifies tokens an issuer signed with its published keys
// (types jwt, and auth0 without a secret): the ID-token verifier of the oidc
// adapter (allow-listed asymmetric algorithms, exact iss, aud without
// untrusted extras, azp, exp required, iat required and not older than
// max_event_age, nbf, no crit, no jku/x5u), minus the nonce: a posted token
// belongs to no transaction of ours.
type jwtSource struct {
	cfg      config.LoginEvents
	keys     *oidc.RemoteKeys
	verifier *oidc.TokenVerifier
	clock    bridge.Clock
}

var (
	_ bridge.LoginEventSource    = (*jwtSource)(nil)
	_ bridge.LoginEventReadiness = (*jwtSource)(nil)
)

func newJWT(ctx context.Context, cfg config.LoginEvents, o Options) (*jwtSource, error) {
	if cfg.Issuer == "" || cfg.Audience == "" || cfg.JWKSURI == "" {
		return nil, errors.New("issuer, audience and jwks_uri are required")
	}
	keys, err := oidc.NewRemoteKeys(ctx, cfg.JWKSURI, oidc.KeySetOptions{
		Client:          o.HTTPClient,
		HTTPTimeout:     cfg.HTTPTimeout,
		UnknownKIDEvery: o.UnknownKIDEvery,
		Logger:          o.Logger,
		Name:            cfg.Issuer,
	}, o.RetryMin, o.RetryMax)
	if err != nil {
		return nil, err
	}
	v, err := oidc.NewTokenVerifier(oidc.VerifierConfig{
		Issuer:      cfg.Issuer,
		Audience:    cfg.Audience,
		Algorithms:  cfg.Algorithms,
		Leeway:      cfg.Leeway,
		MaxTokenAge: cfg.MaxEventAge,
		Clock:       o.Clock,
	}, keys)
	if err != nil {
		keys.Close()
		return nil, err
	}
	return &jwtSource{cfg: cfg, keys: keys, verifier: v, clock: o.Clock}, nil
}

// Ready reports whether the issuer's keys are loaded.
func (s *jwtSource) Ready(ctx context.Context) error { return s.keys.Ready(ctx) }

// Close stops the JWK Set refresh.
func (s *jwtSource) Close() { s.keys.Close() }

// Parse verifies the posted token and records its subject as a verified
// login at its iat. Until the keys are loaded it fails with an error that
// is neither unauthenticated nor malformed (503: the IdP retries).
func (s *jwtSource) Parse(ctx context.Context, req bridge.WebhookRequest) ([]bridge.LoginRecord, error) {
	raw, err := postedToken(req.Body)
	if err != nil {
		return nil, err
	}
	if err := s.keys.Ready(ctx); err != nil {
		return nil, fmt.Errorf("login event keys: %w", err)
	}
	claims, err := s.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, unauthenticated(tokenReason(err))
	}
	return recordFromClaims(claims, s.cfg, s.clock)
}

// recordFromClaims maps verified claims by the claim mapping (the subject
// policy of the oidc adapter applies: no email subject unless configured and
// verified, tenant prefix) into a verified record at iat.
func recordFromClaims(claims jwt.MapClaims, cfg config.LoginEvents, clock bridge.Clock) ([]bridge.LoginRecord, error) {
	iat, err := claims.GetIssuedAt()
	if err != nil || iat == nil {
		return nil, unauthenticated("token: iat missing")
	}
	id, err := oidc.MapIdentity(claims, cfg.Claims, cfg.Provider, clock.Now())
	if err != nil {
		return nil, unauthenticated(tokenReason(err))
	}
	at := iat.UTC()
	id.VerifiedAt = at
	return []bridge.LoginRecord{{Verified: true, At: at, Identity: id}}, nil
}
