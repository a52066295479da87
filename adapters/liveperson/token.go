package liveperson

import (
	"context"
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
	"math/big"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// Token endpoint errors LivePerson documents (reference liveperson.md §1.3:
// json_parse_error, invalid_code, unauthorized_client), plus RFC 6749's for
// requests LivePerson never sends.
const (
	ErrCodeInvalidCode        = "invalid_code"
	ErrCodeUnauthorizedClient = "unauthorized_client"
	ErrCodeInvalidRequest     = "invalid_request"
	ErrCodeUnsupportedGrant   = "unsupported_grant_type"
	ErrCodeUnavailable        = "temporarily_unavailable"
)

// MinRSABits is the smallest signing key accepted.
const MinRSABits = 2048

// redeemTimeout bounds the IdP round trip inside one token request.
const redeemTimeout = 10 * time.Second

// signingKey is one RSA key of the connector.
type signingKey struct {
	kid  string
	priv *rsa.PrivateKey
}

// keySet holds the connector's keys: the first signs, all are published.
type keySet struct {
	keys []signingKey
	jwks []byte
}

func newKeySet(cfg config.LivePersonConnector) (*keySet, error) {
	ks := &keySet{}
	var errs []error
	for i, k := range cfg.SigningKeys {
		priv, err := parseRSAKey([]byte(k.PrivateKey.Value))
		if err != nil {
			errs = append(errs, fmt.Errorf("connector.signing_keys[%d].private_key: %w", i, err))
			continue
		}
		kid := k.ID
		if kid == "" {
			kid = thumbprint(&priv.PublicKey)
		}
		ks.keys = append(ks.keys, signingKey{kid: kid, priv: priv})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(ks.keys) == 0 {
		if !cfg.DevGenerateKey {
			return nil, errors.New("connector.signing_keys: at least one key is required")
		}
		priv, err := rsa.GenerateKey(rand.Reader, MinRSABits)
		if err != nil {
			return nil, fmt.Errorf("connector: generate development key: %w", err)
		}
		ks.keys = append(ks.keys, signingKey{kid: thumbprint(&priv.PublicKey), priv: priv})
	}
	type jwk struct {
		Kty string `json:"kty"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		N   string `json:"n"`
		E   string `json:"e"`
	}
	doc := struct {
		Keys []jwk `json:"keys"`
	}{}
	for _, k := range ks.keys {
		n, e := rsaParams(&k.priv.PublicKey)
		doc.Keys = append(doc.Keys, jwk{Kty: "RSA", Use: "sig", Alg: "RS256", Kid: k.kid, N: n, E: e})
	}
	ks.jwks, _ = json.Marshal(doc)
	return ks, nil
}

// parseRSAKey reads a PEM RSA private key (PKCS #1 or PKCS #8). Errors
// never quote the input.
func parseRSAKey(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not PEM")
	}
	var priv *rsa.PrivateKey
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("not a valid PKCS #1 RSA key")
		}
		priv = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("not a valid PKCS #8 key")
		}
		r, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("not an RSA key (LivePerson verifies RS256)")
		}
		priv = r
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if priv.N.BitLen() < MinRSABits {
		return nil, fmt.Errorf("RSA key of %d bits; at least %d required", priv.N.BitLen(), MinRSABits)
	}
	return priv, nil
}

func rsaParams(pub *rsa.PublicKey) (n, e string) {
	return base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
}

// thumbprint is the RFC 7638 JWK thumbprint: a kid that changes with the key.
func thumbprint(pub *rsa.PublicKey) string {
	n, e := rsaParams(pub)
	sum := sha256.Sum256([]byte(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// tokenIssuer is the code-flow token endpoint of one brand.
type tokenIssuer struct {
	cfg    config.LivePersonConnector
	secret []byte
	keys   *keySet
	clock  bridge.Clock
}

func tokenError(status int, code, reason string) bridge.TokenResult {
	body, _ := json.Marshal(map[string]string{"error": code})
	return bridge.TokenResult{Status: status, Body: body, Reason: reason}
}

// IssueToken serves LivePerson's code-flow token request: Basic client
// authentication, a form with grant_type=authorization_code, code and
// redirect_uri. The code is redeemed at the brand's IdP, the ID token
// verified there, and the answer is LivePerson's documented body with an
// id_token the bridge signs.
func (t *tokenIssuer) IssueToken(ctx context.Context, r *http.Request, idp bridge.CodeRedeemer) bridge.TokenResult {
	if r.Method != http.MethodPost {
		return tokenError(http.StatusMethodNotAllowed, ErrCodeInvalidRequest, "method")
	}
	if !t.clientAuthenticated(r) {
		res := tokenError(http.StatusUnauthorized, ErrCodeUnauthorizedClient, "client authentication")
		return res
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return tokenError(http.StatusBadRequest, ErrCodeInvalidRequest, "content type")
	}
	if err := r.ParseForm(); err != nil {
		return tokenError(http.StatusBadRequest, ErrCodeInvalidRequest, "form")
	}
	f := r.PostForm
	if f.Get("grant_type") != "authorization_code" {
		return tokenError(http.StatusBadRequest, ErrCodeUnsupportedGrant, "grant type")
	}
	code := f.Get("code")
	if code == "" || len(code) > 4096 {
		return tokenError(http.StatusBadRequest, ErrCodeInvalidCode, "code missing")
	}
	redirect := t.cfg.RedirectURI
	if redirect == "" {
		redirect = f.Get("redirect_uri")
	}
	if redirect == "" {
		return tokenError(http.StatusBadRequest, ErrCodeInvalidRequest, "redirect_uri missing")
	}
	rctx, cancel := context.WithTimeout(ctx, redeemTimeout)
	id, err := idp.RedeemCode(rctx, code, redirect)
	cancel()
	if err != nil {
		reason := oidc.Reason(err)
		if reason == "" {
			reason = "identity provider refused"
		}
		if errors.Is(err, oidc.ErrUnavailable) || errors.Is(err, bridge.ErrUnavailable) {
			return tokenError(http.StatusServiceUnavailable, ErrCodeUnavailable, reason)
		}
		return tokenError(http.StatusBadRequest, ErrCodeInvalidCode, reason)
	}
	raw, err := t.mint(&id)
	if err != nil {
		return tokenError(http.StatusInternalServerError, "server_error", "sign")
	}
	body, _ := json.Marshal(map[string]string{
		// LivePerson reads only id_token; access_token is required by its
		// format and means nothing (its sample spells it "NotApplicabale").
		"access_token": "NotApplicable",
		"token_type":   "Bearer",
		"id_token":     raw,
	})
	return bridge.TokenResult{Status: http.StatusOK, Body: body, Login: &id, Reason: "issued"}
}

// clientAuthenticated checks Basic client_id:client_secret in constant
// time. RFC 6749 form-encodes both inside Basic; LivePerson's docs show
// them plain: either form is accepted.
func (t *tokenIssuer) clientAuthenticated(r *http.Request) bool {
	enc, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Basic ")
	if !ok {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return false
	}
	id, secret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return false
	}
	match := func(id, secret string) bool {
		idOK := subtle.ConstantTimeCompare([]byte(id), []byte(t.cfg.ClientID))
		secretOK := subtle.ConstantTimeCompare([]byte(secret), t.secret)
		return idOK&secretOK == 1
	}
	if match(id, secret) {
		return true
	}
	uid, err1 := url.QueryUnescape(id)
	usecret, err2 := url.QueryUnescape(secret)
	return err1 == nil && err2 == nil && match(uid, usecret)
}

// mint signs LivePerson's id_token for the identity: iss, iat, exp, sub,
// the mapped claims and lp_sdes, whose ctmrinfo.customerId is always the
// subject — the key on which the bridge later recognises the swap.
func (t *tokenIssuer) mint(id *bridge.Identity) (string, error) {
	now := t.clock.Now()
	claims := jwt.MapClaims{
		"iss": t.cfg.Issuer,
		"sub": id.Subject,
		"iat": now.Unix(),
		"exp": now.Add(t.cfg.TokenTTL).Unix(),
	}
	mapping := t.cfg.Claims
	if len(mapping) == 0 {
		mapping = map[string]string{"email": "email", "given_name": "given_name", "family_name": "family_name", "phone_number": "phone_number"}
	}
	for claim, attr := range mapping {
		if v := attribute(id, attr); v != "" {
			claims[claim] = v
		}
	}
	claims["lp_sdes"] = lpSDEs(id, t.cfg.SDEs, nil)
	k := t.keys.keys[0]
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = k.kid
	return tok.SignedString(k.priv)
}

// lpSDEs are the authenticated SDEs of the identity: ctmrinfo with the
// kept info fields, customerId (always the subject) and the mapped fields
// (sde path: attribute), personal ones in a personal SDE.
func lpSDEs(id *bridge.Identity, mapping map[string]string, keep map[string]json.RawMessage) []any {
	info := map[string]any{}
	for k, v := range keep {
		info[k] = v
	}
	info["customerId"] = id.Subject
	personal := map[string]any{}
	contact := map[string]any{}
	for sde, attr := range mapping {
		v := attribute(id, attr)
		if v == "" {
			continue
		}
		typ, field, _ := strings.Cut(sde, ".")
		switch {
		case typ == "ctmrinfo":
			info[field] = v
		case field == "email" || field == "phone":
			contact[field] = v
		default:
			personal[field] = v
		}
	}
	if len(contact) > 0 {
		personal["contacts"] = []any{contact}
	}
	sdes := []any{map[string]any{"type": "ctmrinfo", "info": info}}
	if len(personal) > 0 {
		sdes = append(sdes, map[string]any{"type": "personal", "personal": personal})
	}
	return sdes
}

// attribute reads an identity attribute by name: subject, name, email
// (verified only), provider, issuer, acr, or an identity.claims.extra
// attribute.
func attribute(id *bridge.Identity, name string) string {
	switch name {
	case "subject":
		return id.Subject
	case "name":
		return id.Name
	case "email":
		// An address the IdP has not verified would show as the customer's.
		if !id.EmailVerified {
			return ""
		}
		return id.Email
	case "provider":
		return id.Provider
	case "issuer":
		return id.Issuer
	case "acr":
		return id.ACR
	}
	return id.Claims[name]
}

// JWKS is the published key set.
func (t *tokenIssuer) JWKS() []byte { return t.keys.jwks }
