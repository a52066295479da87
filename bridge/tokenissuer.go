package bridge

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
)

// Platform-native step-up, the platform-facing half (DESIGN §4 flow B): a
// platform that logs consumers in through the bridge (LivePerson's
// authentication connector, code flow) calls the bridge as the brand's token
// endpoint; the adapter redeems the code at the brand's IdP and mints the
// platform's login token, and the service records the login before the
// token leaves, so that the platform's later identity swap correlates.

// SessionReader reads a conversation's session; every Store is one.
type SessionReader interface {
	Get(ctx context.Context, key Key) (Session, error)
}

// BrandBound is a platform adapter that needs its brand id and read access
// to sessions: LivePerson's webhooks carry the whole conversation on every
// change, and only the consumer the bridge recorded tells an identity swap
// from a routine update. NewService calls BindBrand once, before serving.
type BrandBound interface {
	BindBrand(brand string, sessions SessionReader)
}

func bindBrand(b *Brand, sessions SessionReader) {
	for _, p := range b.Platforms {
		if bb, ok := p.(BrandBound); ok {
			bb.BindBrand(b.ID, sessions)
		}
	}
}

// CodeRedeemer is an IdentityProvider that redeems an authorization code
// obtained by someone else's authorization request (the brand's page, in
// LivePerson's code flow): no PKCE verifier and no nonce are known to the
// bridge, so it relies on client authentication and the exact redirect URI.
// Errors wrap ErrLoginRejected; IdP outages also wrap ErrUnavailable.
type CodeRedeemer interface {
	RedeemCode(ctx context.Context, code, redirectURI string) (Identity, error)
}

// TokenIssuer is a platform adapter that serves the brand's token endpoint
// and the public keys of the tokens it mints.
type TokenIssuer interface {
	// IssueToken answers one token request in the platform's own terms.
	IssueToken(ctx context.Context, r *http.Request, idp CodeRedeemer) TokenResult
	// JWKS is the JWK Set document of the signing keys; nil when the
	// adapter is configured not to issue tokens.
	JWKS() []byte
}

// TokenResult is a token endpoint answer.
type TokenResult struct {
	Status int
	Body   []byte // JSON, in the platform's format
	// Login is the verified identity a token was minted for; nil on refusal.
	Login *Identity
	// Reason is short fixed text for logs and metrics (never a code or token).
	Reason string
}

// maxTokenRequestBytes bounds a token request body (a form with one code).
const maxTokenRequestBytes = 16 << 10

func (s *Service) tokenIssuer(brandID string) (*Brand, TokenIssuer, error) {
	b, err := s.Brand(brandID)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range b.Platforms {
		if ti, ok := p.(TokenIssuer); ok {
			return b, ti, nil
		}
	}
	return nil, nil, ErrUnknownPlatform
}

// ServeToken serves POST /token/{brand}. The login is recorded before the
// token is sent: a login the bridge cannot record is refused (503), so the
// platform never steps up a consumer the bridge cannot vouch for.
func (s *Service) ServeToken(w http.ResponseWriter, r *http.Request, brandID string) {
	b, ti, err := s.tokenIssuer(brandID)
	if err != nil {
		writeTokenJSON(w, http.StatusNotFound, map[string]string{"error": "no token endpoint for this brand"})
		return
	}
	idp, ok := b.Identity.(CodeRedeemer)
	if !ok {
		writeTokenJSON(w, http.StatusNotFound, map[string]string{"error": "the brand's identity provider cannot redeem codes"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequestBytes)
	res := ti.IssueToken(r.Context(), r, idp)
	if res.Status < 200 || res.Status > 599 {
		res = TokenResult{Status: http.StatusInternalServerError, Body: []byte(`{"error":"server_error"}`), Reason: "adapter gave no status"}
	}
	ctx := r.Context()
	log := s.log.With("brand", b.ID, "route", "token")
	if res.Login != nil && res.Status == http.StatusOK {
		rec := LoginRecord{Brand: b.ID, Source: "token_endpoint", Verified: true, Identity: *res.Login, At: s.clock.Now()}
		if err := s.RecordLogin(ctx, rec); err != nil {
			log.ErrorContext(ctx, "login not recorded; token withheld", "error", err)
			s.rec.Login(b.ID, "token_unrecorded")
			w.Header().Set("Retry-After", "5")
			writeTokenJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
			return
		}
		log.InfoContext(ctx, "platform login token issued", "provider", res.Login.Provider)
	} else {
		s.rec.Login(b.ID, "token_refused")
		level := slog.LevelInfo
		if res.Status >= 500 {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, "platform token request refused", "status", res.Status, "reason", res.Reason)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if res.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	w.WriteHeader(res.Status)
	_, _ = w.Write(res.Body)
}

// ServeJWKS serves GET /jwks/{brand}.
func (s *Service) ServeJWKS(w http.ResponseWriter, _ *http.Request, brandID string) {
	_, ti, err := s.tokenIssuer(brandID)
	var jwks []byte
	if err == nil {
		jwks = ti.JWKS()
	}
	if jwks == nil {
		writeTokenJSON(w, http.StatusNotFound, map[string]string{"error": "no token endpoint for this brand"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// Short, so a rotation reaches the platform soon; old keys stay
	// published until their tokens expire.
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(jwks)
}

func writeTokenJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":"server_error"}`)
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
