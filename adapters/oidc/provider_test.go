package oidc_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc"
	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

func TestRedeemHappyPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		alg  string
		tls  bool
	}{
		{"RS256", "RS256", false},
		{"ES256", "ES256", false},
		{"RS256 over TLS", "RS256", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(s *setup) { s.idp.TLS = tc.tls })
			require.NoError(t, e.p.Ready(e.ctx))
			require.NoError(t, e.idp.UseAlg(tc.alg))
			e.idp.QueueUser(oidctest.User{
				Subject: "cust-7", Name: "Bob Buyer", Email: "bob@example.test", EmailVerified: true,
				AMR: []string{"pwd", "mfa"}, ACR: "urn:acme:loa:2",
				Extra: map[string]any{"https://acme.example/customer_id": "C-1001"},
			})
			e.idp.OnIssue(func(is *oidctest.Issue) { assert.Equal(t, e.idp.KID(tc.alg), is.KID) })

			id, err := e.redeem(t)
			require.NoError(t, err)
			now := e.clock.Now()
			assert.Equal(t, bridge.Identity{
				Provider:      strings.TrimPrefix(strings.TrimPrefix(e.idp.URL(), "http://"), "https://"),
				Issuer:        e.idp.Issuer(),
				Subject:       "cust-7",
				Name:          "Bob Buyer",
				Email:         "bob@example.test",
				EmailVerified: true,
				AMR:           []string{"pwd", "mfa"},
				ACR:           "urn:acme:loa:2",
				AuthTime:      now.UTC(),
				VerifiedAt:    now,
				Claims:        map[string]string{"customer_id": "C-1001"},
			}, id)
			assert.Equal(t, int64(1), e.idp.TokenRequests())
			assert.Equal(t, int64(1), e.idp.JWKSFetches(), "keys fetched once at start")
			assert.Equal(t, int64(1), e.idp.DiscoveryFetches())
		})
	}
}

func TestClaimMapping(t *testing.T) {
	e := newEnv(t, func(s *setup) {
		s.identity = func(c *config.Identity) {
			c.Name = "Acme login"
			c.Claims = config.ClaimMapping{
				Subject: "oid",
				Name:    "given_name",
				Email:   "mail",
				Extra: map[string]string{
					"customer_id": "https://acme.example/customer_id",
					"tier":        "tier",
					"vip":         "vip",
					"address":     "address",
					"groups":      "groups",
					"absent":      "nope",
				},
			}
		}
	})
	e.idp.OnIssue(func(is *oidctest.Issue) {
		is.Claims["oid"] = "00000000-0000-0000-0000-0000000000aa"
		is.Claims["given_name"] = "Carol"
		is.Claims["mail"] = "carol@example.test"
		is.Claims["email_verified"] = "true" // the string form some IdPs send
		is.Claims["https://acme.example/customer_id"] = json.Number("12345678901234567")
		is.Claims["tier"] = "gold"
		is.Claims["vip"] = true
		is.Claims["address"] = map[string]any{"country": "NL"}
		is.Claims["groups"] = []string{"a", "b"}
	})
	id, err := e.redeem(t)
	require.NoError(t, err)
	assert.Equal(t, "Acme login", id.Provider)
	assert.Equal(t, "00000000-0000-0000-0000-0000000000aa", id.Subject)
	assert.Equal(t, "Carol", id.Name)
	assert.Equal(t, "carol@example.test", id.Email)
	assert.True(t, id.EmailVerified)
	assert.Equal(t, map[string]string{
		"customer_id": "12345678901234567", // exact, not through float64
		"tier":        "gold",
		"vip":         "true",
	}, id.Claims)

	// The mapped subject claim must be there.
	e.idp.OnIssue(func(is *oidctest.Issue) { delete(is.Claims, "oid") })
	_, err = e.redeem(t)
	requireRejected(t, err, `id token: subject claim "oid" missing`)
}

// TestRedeemRejects has one case per attack or broken token; each gets a
// real token from the real token endpoint, changed by the IdP before (or
// instead of) signing.
func TestRedeemRejects(t *testing.T) {
	type kase struct {
		name     string
		identity func(*config.Identity)
		hook     func(e *env, is *oidctest.Issue)
		reason   string
		check    func(t *testing.T, e *env)
	}
	var jkuHits atomic.Int64
	jku := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { jkuHits.Add(1) }))
	t.Cleanup(jku.Close)

	for _, tc := range []kase{
		{
			name: "alg none",
			hook: func(e *env, is *oidctest.Issue) { is.Raw = e.idp.NoneToken(is.Claims) },
			// keyfunc is never even asked: WithValidMethods refuses first.
			reason: "id token: algorithm not allowed",
		},
		{
			name: "HS256 keyed with the RSA public key PEM",
			hook: func(e *env, is *oidctest.Issue) {
				pem, err := e.idp.PublicKeyPEM(is.KID)
				if err != nil {
					panic(err)
				}
				is.Raw, err = e.idp.HMACToken(is.Claims, is.KID, pem)
				if err != nil {
					panic(err)
				}
			},
			reason: "id token: algorithm not allowed",
		},
		{
			name: "HS256 keyed with the JWK Set bytes",
			hook: func(e *env, is *oidctest.Issue) {
				var err error
				is.Raw, err = e.idp.HMACToken(is.Claims, is.KID, e.idp.JWKS())
				if err != nil {
					panic(err)
				}
			},
			reason: "id token: algorithm not allowed",
		},
		{
			name: "unknown kid",
			hook: func(e *env, is *oidctest.Issue) {
				var err error
				is.Raw, err = e.idp.ForeignToken(is.Claims, "RS256", "rsa-attacker")
				if err != nil {
					panic(err)
				}
			},
			reason: "id token: unknown signing key",
			check: func(t *testing.T, e *env) {
				assert.Equal(t, int64(2), e.idp.JWKSFetches(), "one rate-limited refresh for the unknown kid")
			},
		},
		{
			name: "signature by a key not in the JWK Set, under a published kid",
			hook: func(e *env, is *oidctest.Issue) {
				var err error
				is.Raw, err = e.idp.ForeignToken(is.Claims, "RS256", is.KID)
				if err != nil {
					panic(err)
				}
			},
			reason: "id token: invalid signature",
		},
		{
			name: "ES256 token naming the RSA key",
			hook: func(e *env, is *oidctest.Issue) {
				is.KID = e.idp.KID("ES256")
				is.Header["kid"] = e.idp.KID("RS256")
			},
			// keyfunc: the JWK's alg (RS256) differs from the token's.
			reason: "id token: no usable signing key",
		},
		{
			name: "jku header pointing at the attacker's keys",
			hook: func(e *env, is *oidctest.Issue) {
				var err error
				is.Raw, err = e.idp.ForeignToken(is.Claims, "RS256", "attacker-kid")
				if err != nil {
					panic(err)
				}
				// Re-sign with jku/x5u/jwk headers: keyfunc must never fetch them.
				tok, _, _ := jwt.NewParser().ParseUnverified(is.Raw, jwt.MapClaims{})
				parts := strings.Split(is.Raw, ".")
				tok.Header["jku"] = jku.URL + "/jwks"
				tok.Header["x5u"] = jku.URL + "/cert"
				h, _ := json.Marshal(tok.Header)
				is.Raw = base64.RawURLEncoding.EncodeToString(h) + "." + parts[1] + "." + parts[2]
			},
			reason: "id token: unknown signing key",
			check: func(t *testing.T, e *env) {
				assert.Zero(t, jkuHits.Load(), "jku/x5u must never be fetched")
			},
		},
		{
			name:   "wrong iss",
			hook:   func(e *env, is *oidctest.Issue) { is.Claims["iss"] = "https://evil.example" },
			reason: "id token: invalid issuer",
		},
		{
			name:   "iss missing",
			hook:   func(e *env, is *oidctest.Issue) { delete(is.Claims, "iss") },
			reason: "id token: iss missing",
		},
		{
			name: "wrong aud",
			hook: func(e *env, is *oidctest.Issue) {
				is.Claims["aud"] = "another-client"
				delete(is.Claims, "azp")
			},
			reason: "id token: invalid audience",
		},
		{
			name: "extra untrusted aud",
			hook: func(e *env, is *oidctest.Issue) {
				is.Claims["aud"] = []string{e.idp.ClientID(), "https://untrusted.example"}
			},
			reason: "id token: untrusted audience",
		},
		{
			name:     "several aud without azp",
			identity: func(c *config.Identity) { c.ExtraAudiences = []string{"https://api.acme.example"} },
			hook: func(e *env, is *oidctest.Issue) {
				is.Claims["aud"] = []string{e.idp.ClientID(), "https://api.acme.example"}
				delete(is.Claims, "azp")
			},
			reason: "id token: azp missing with several audiences",
		},
		{
			name:   "aud missing",
			hook:   func(e *env, is *oidctest.Issue) { delete(is.Claims, "aud") },
			reason: "id token: aud missing",
		},
		{
			name:   "azp mismatch",
			hook:   func(e *env, is *oidctest.Issue) { is.Claims["azp"] = "another-client" },
			reason: "id token: azp is not the client",
		},
		{
			name: "expired",
			hook: func(e *env, is *oidctest.Issue) {
				now := e.clock.Now()
				is.Claims["iat"] = now.Add(-2 * time.Minute).Unix()
				is.Claims["exp"] = now.Add(-31 * time.Second).Unix() // leeway is 30s
			},
			reason: "id token: expired",
		},
		{
			name:   "exp missing",
			hook:   func(e *env, is *oidctest.Issue) { delete(is.Claims, "exp") },
			reason: "id token: exp missing",
		},
		{
			name:   "exp not a number",
			hook:   func(e *env, is *oidctest.Issue) { is.Claims["exp"] = "tomorrow" },
			reason: "id token: invalid claim type",
		},
		{
			name:   "iat in the future beyond leeway",
			hook:   func(e *env, is *oidctest.Issue) { is.Claims["iat"] = e.clock.Now().Add(31 * time.Second).Unix() },
			reason: "id token: issued in the future",
		},
		{
			name:   "iat older than max_token_age",
			hook:   func(e *env, is *oidctest.Issue) { is.Claims["iat"] = e.clock.Now().Add(-11 * time.Minute).Unix() },
			reason: "id token: too old",
		},
		{
			name:   "iat missing",
			hook:   func(e *env, is *oidctest.Issue) { delete(is.Claims, "iat") },
			reason: "id token: iat missing",
		},
		{
			name:   "nbf in the future",
			hook:   func(e *env, is *oidctest.Issue) { is.Claims["nbf"] = e.clock.Now().Add(time.Minute).Unix() },
			reason: "id token: not valid yet",
		},
		{
			name:   "nonce missing",
			hook:   func(e *env, is *oidctest.Issue) { delete(is.Claims, "nonce") },
			reason: "id token: nonce missing",
		},
		{
			name:   "nonce mismatch",
			hook:   func(e *env, is *oidctest.Issue) { is.Claims["nonce"] = bridge.RandomString(16) },
			reason: "id token: nonce mismatch",
		},
		{
			name:   "sub missing",
			hook:   func(e *env, is *oidctest.Issue) { delete(is.Claims, "sub") },
			reason: "id token: sub missing",
		},
		{
			name:   "crit header",
			hook:   func(e *env, is *oidctest.Issue) { is.Header["crit"] = []string{"exp"} },
			reason: "id token: unsupported critical header",
		},
		{
			name:   "access token type",
			hook:   func(e *env, is *oidctest.Issue) { is.Header["typ"] = "at+jwt" },
			reason: "id token: unexpected type",
		},
		{
			name:   "garbage",
			hook:   func(e *env, is *oidctest.Issue) { is.Raw = "not-a.jwt" },
			reason: "id token: malformed",
		},
		{
			name: "tampered payload",
			hook: func(e *env, is *oidctest.Issue) {
				raw, err := e.idp.Sign(is.Claims, is.KID)
				if err != nil {
					panic(err)
				}
				parts := strings.Split(raw, ".")
				is.Claims["sub"] = "admin"
				body, _ := json.Marshal(is.Claims)
				is.Raw = parts[0] + "." + base64.RawURLEncoding.EncodeToString(body) + "." + parts[2]
			},
			reason: "id token: invalid signature",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(s *setup) { s.identity = tc.identity })
			e.idp.OnIssue(func(is *oidctest.Issue) { tc.hook(e, is) })
			_, err := e.redeem(t)
			requireRejected(t, err, tc.reason)
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}
}

func TestRedeemAcceptsTrustedExtraAudienceWithAzp(t *testing.T) {
	e := newEnv(t, func(s *setup) {
		s.identity = func(c *config.Identity) { c.ExtraAudiences = []string{"https://api.acme.example"} }
	})
	e.idp.OnIssue(func(is *oidctest.Issue) {
		is.Claims["aud"] = []string{e.idp.ClientID(), "https://api.acme.example"}
	})
	_, err := e.redeem(t)
	require.NoError(t, err)
}

func TestRedeemAcceptsTokenWithoutKID(t *testing.T) {
	// keyfunc then offers every key of the set; the signature must match one.
	e := newEnv(t)
	e.idp.OnIssue(func(is *oidctest.Issue) { is.Header["kid"] = nil })
	_, err := e.redeem(t)
	require.NoError(t, err)

	e.idp.OnIssue(func(is *oidctest.Issue) {
		var err error
		is.Raw, err = e.idp.ForeignToken(is.Claims, "RS256", "x")
		assert.NoError(t, err)
		tok, _, _ := jwt.NewParser().ParseUnverified(is.Raw, jwt.MapClaims{})
		delete(tok.Header, "kid")
		h, _ := json.Marshal(tok.Header)
		parts := strings.Split(is.Raw, ".")
		is.Raw = base64.RawURLEncoding.EncodeToString(h) + "." + parts[1] + "." + parts[2]
	})
	_, err = e.redeem(t)
	requireRejected(t, err, "id token: invalid signature")
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Run("code used twice", func(t *testing.T) {
		e := newEnv(t)
		code, verifier, nonce := e.login(t)
		_, err := e.p.Redeem(e.ctx, code, verifier, nonce)
		require.NoError(t, err)
		_, err = e.p.Redeem(e.ctx, code, verifier, nonce)
		requireRejected(t, err, "token endpoint: invalid_grant (status 400)")
		require.NotContains(t, err.Error(), code)
		require.False(t, errors.Is(err, oidc.ErrUnavailable))
	})
	t.Run("wrong PKCE verifier", func(t *testing.T) {
		e := newEnv(t)
		code, _, nonce := e.login(t)
		_, err := e.p.Redeem(e.ctx, code, oidc.NewVerifier(), nonce)
		requireRejected(t, err, "token endpoint: invalid_grant (status 400)")
	})
	t.Run("wrong client secret", func(t *testing.T) {
		e := newEnv(t, func(s *setup) {
			s.identity = func(c *config.Identity) { c.ClientSecret.Value = "not-the-secret" }
		})
		_, err := e.redeem(t)
		requireRejected(t, err, "token endpoint: invalid_client (status 401)")
		require.NotContains(t, err.Error(), "not-the-secret")
	})
	t.Run("server error", func(t *testing.T) {
		e := newEnv(t)
		e.idp.OnToken(func(w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "boom", http.StatusBadGateway)
			return true
		})
		_, err := e.redeem(t)
		requireRejected(t, err, "token endpoint: status 502")
		require.ErrorIs(t, err, oidc.ErrUnavailable)
	})
	t.Run("free text in the error code is not echoed", func(t *testing.T) {
		e := newEnv(t)
		e.idp.OnToken(func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"bad code \"abc\" for user alice@example.test","error_description":"secret stuff"}`)
			return true
		})
		_, err := e.redeem(t)
		requireRejected(t, err, "token endpoint: invalid_error_code (status 400)")
		require.NotContains(t, err.Error(), "alice")
		require.NotContains(t, err.Error(), "secret stuff")
	})
	t.Run("no id_token", func(t *testing.T) {
		e := newEnv(t)
		e.idp.OnToken(func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"access_token":"x","token_type":"Bearer"}`)
			return true
		})
		_, err := e.redeem(t)
		requireRejected(t, err, "token endpoint: no id_token")
	})
	t.Run("oversized response", func(t *testing.T) {
		e := newEnv(t)
		e.idp.OnToken(func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id_token":"`)
			io.WriteString(w, strings.Repeat("A", 2<<20))
			io.WriteString(w, `"}`)
			return true
		})
		_, err := e.redeem(t)
		requireRejected(t, err, "token endpoint: response too large or unreadable")
	})
	t.Run("unreachable", func(t *testing.T) {
		e := newEnv(t)
		code, verifier, nonce := e.login(t)
		e.idp.Close()
		_, err := e.p.Redeem(e.ctx, code, verifier, nonce)
		requireRejected(t, err, "token endpoint unreachable")
		require.ErrorIs(t, err, oidc.ErrUnavailable)
		require.NotContains(t, err.Error(), code)
	})
	t.Run("bad input is refused before any call", func(t *testing.T) {
		e := newEnv(t)
		_, err := e.p.Redeem(e.ctx, "", oidc.NewVerifier(), "n")
		requireRejected(t, err, "code missing")
		_, err = e.p.Redeem(e.ctx, "c", "short", "n")
		requireRejected(t, err, "invalid code verifier")
		_, err = e.p.Redeem(e.ctx, "c", oidc.NewVerifier(), "")
		requireRejected(t, err, "nonce missing")
		require.Zero(t, e.idp.TokenRequests())
	})
}

func TestTokenRequestShape(t *testing.T) {
	// client_secret_basic with RFC 6749 §2.3.1 form-urlencoding of id and
	// secret; nothing secret in the URL or the body.
	const id, secret = "bridge client/1", "s3cr:t +%/é&="
	e := newEnv(t, func(s *setup) {
		s.idp.ClientID = id
		s.idp.ClientSecret = secret
	})
	var seen atomic.Bool
	e.idp.OnToken(func(w http.ResponseWriter, r *http.Request) bool {
		seen.Store(true)
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
		assert.Equal(t, want, r.Header.Get("Authorization"))
		assert.Empty(t, r.URL.RawQuery)
		assert.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
		body, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(body))
		assert.NoError(t, err)
		assert.Equal(t, []string{"code", "code_verifier", "grant_type", "redirect_uri"}, sortedKeys(form))
		assert.Equal(t, redirectURL, form.Get("redirect_uri"))
		assert.NotContains(t, string(body), url.QueryEscape(secret))
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		return false // let the IdP answer: it checks the credentials too
	})
	_, err := e.redeem(t)
	require.NoError(t, err)
	require.True(t, seen.Load())
}

func sortedKeys(v url.Values) []string {
	var ks []string
	for k := range v {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func TestAuthURL(t *testing.T) {
	e := newEnv(t, func(s *setup) {
		s.idp.IssuerPath = "/realms/acme"
		s.before = func(idp *oidctest.Provider) {
			idp.OnDiscovery(func(doc map[string]any) {
				doc["authorization_endpoint"] = idp.Issuer() + "/authorize?tenant=acme"
			})
		}
		s.identity = func(c *config.Identity) { c.Scopes = []string{"profile", "email"} }
	})
	u, err := url.Parse(e.p.AuthURL("st", "no", "ch"))
	require.NoError(t, err)
	assert.Equal(t, e.idp.Issuer()+"/authorize", u.Scheme+"://"+u.Host+u.Path)
	assert.Equal(t, url.Values{
		"tenant":                {"acme"},
		"response_type":         {"code"},
		"client_id":             {e.idp.ClientID()},
		"redirect_uri":          {redirectURL},
		"scope":                 {"openid profile email"},
		"state":                 {"st"},
		"nonce":                 {"no"},
		"code_challenge":        {"ch"},
		"code_challenge_method": {"S256"},
	}, u.Query())
	_, err = e.redeem(t) // and it works against an issuer with a path
	require.NoError(t, err)
}

func TestLoginCancelled(t *testing.T) {
	e := newEnv(t)
	e.idp.QueueCancel()
	state := bridge.RandomString(8)
	loc, err := e.idp.Login(e.p.AuthURL(state, "n", oidc.Challenge(oidc.NewVerifier())))
	require.NoError(t, err)
	assert.Equal(t, "access_denied", loc.Query().Get("error"))
	assert.Equal(t, state, loc.Query().Get("state"))
	assert.Empty(t, loc.Query().Get("code"))
}

func TestCheckCallbackIssuer(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.p.CheckCallbackIssuer(e.idp.Issuer()))
	requireRejected(t, e.p.CheckCallbackIssuer("https://evil.example"), "callback: issuer mismatch")
	// The provider advertises authorization_response_iss_parameter_supported.
	requireRejected(t, e.p.CheckCallbackIssuer(""), "callback: iss missing")
}

func TestPKCE(t *testing.T) {
	// RFC 7636 Appendix B.
	assert.Equal(t, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		oidc.Challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"))
	seen := map[string]bool{}
	for range 100 {
		v := oidc.NewVerifier()
		require.Len(t, v, 43)
		require.Regexp(t, `^[A-Za-z0-9._~-]+$`, v)
		require.False(t, seen[v])
		seen[v] = true
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	idp := oidctest.NewTest(t, oidctest.Config{RedirectURIs: []string{redirectURL}})
	for _, tc := range []struct {
		name     string
		mod      func(*config.Identity)
		redirect string
		want     string
	}{
		{"symmetric algorithm", func(c *config.Identity) { c.Algorithms = []string{"RS256", "HS256"} }, "", `algorithm "HS256" not allowed`},
		{"none algorithm", func(c *config.Identity) { c.Algorithms = []string{"none"} }, "", `algorithm "none" not allowed`},
		{"no client id", func(c *config.Identity) { c.ClientID = "" }, "", "client_id required"},
		{"no client secret", func(c *config.Identity) { c.ClientSecret = config.Secret{} }, "", "client_secret required"},
		{"http issuer off loopback", func(c *config.Identity) { c.Issuer = "http://idp.example" }, "", "http is allowed on loopback hosts only"},
		{"issuer with fragment", func(c *config.Identity) { c.Issuer = "https://idp.example/#x" }, "", "fragment"},
		{"redirect off loopback over http", nil, "http://bridge.example/callback/acme", "redirect URL"},
		{"negative leeway", func(c *config.Identity) { c.Leeway = -time.Second }, "", "negative leeway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := idp.Identity()
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			redirect := redirectURL
			if tc.redirect != "" {
				redirect = tc.redirect
			}
			p, err := oidc.New(t.Context(), cfg, redirect, oidc.Options{Logger: slog.New(slog.DiscardHandler)})
			require.Error(t, err)
			require.Nil(t, p)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestDiscoveryRejected(t *testing.T) {
	// A document the bridge must not trust leaves the provider not ready
	// (retrying), with the reason in Ready's error.
	for _, tc := range []struct {
		name string
		tls  bool
		mod  func(idp *oidctest.Provider, doc map[string]any)
		want string
	}{
		{
			name: "mix-up: another issuer",
			mod:  func(idp *oidctest.Provider, doc map[string]any) { doc["issuer"] = "https://evil.example" },
			want: `issuer "https://evil.example" does not match the configured issuer`,
		},
		{
			name: "issuer differs by a trailing slash",
			mod:  func(idp *oidctest.Provider, doc map[string]any) { doc["issuer"] = idp.Issuer() + "/" },
			want: "does not match the configured issuer",
		},
		{
			name: "no S256",
			mod: func(idp *oidctest.Provider, doc map[string]any) {
				doc["code_challenge_methods_supported"] = []string{"plain"}
			},
			want: `code_challenge_methods_supported lacks "S256"`,
		},
		{
			name: "http jwks_uri off loopback",
			mod:  func(idp *oidctest.Provider, doc map[string]any) { doc["jwks_uri"] = "http://keys.example/jwks" },
			want: "jwks_uri: http is allowed on loopback hosts only",
		},
		{
			name: "http token endpoint under an https issuer",
			tls:  true,
			mod: func(idp *oidctest.Provider, doc map[string]any) {
				doc["token_endpoint"] = strings.Replace(idp.Issuer(), "https:", "http:", 1) + "/token"
			},
			want: "token_endpoint: must be https",
		},
		{
			name: "no token endpoint",
			mod:  func(idp *oidctest.Provider, doc map[string]any) { delete(doc, "token_endpoint") },
			want: "token_endpoint missing",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(s *setup) {
				s.idp.TLS = tc.tls
				s.before = func(idp *oidctest.Provider) {
					idp.OnDiscovery(func(doc map[string]any) { tc.mod(idp, doc) })
				}
			})
			err := e.p.Ready(e.ctx)
			require.ErrorIs(t, err, oidc.ErrNotReady)
			require.Contains(t, err.Error(), tc.want)
			require.Contains(t, err.Error(), e.idp.Issuer())
			require.Empty(t, e.p.AuthURL("s", "n", "c"))
			_, err = e.p.Redeem(e.ctx, "code", oidc.NewVerifier(), "nonce")
			requireRejected(t, err, "provider not ready")
			require.ErrorIs(t, err, oidc.ErrNotReady)
			require.ErrorIs(t, err, oidc.ErrUnavailable)

			// It keeps retrying, warns once, and never fetches the keys.
			require.Eventually(t, func() bool { return e.idp.DiscoveryFetches() >= 3 }, 5*time.Second, 5*time.Millisecond)
			require.Error(t, e.p.Ready(e.ctx))
			require.Equal(t, 1, strings.Count(e.logs.String(), "level=WARN"), e.logs.String())
			require.Zero(t, e.idp.JWKSFetches())
		})
	}
}

func TestJWKSDownAtStart(t *testing.T) {
	e := newEnv(t, func(s *setup) {
		s.before = func(idp *oidctest.Provider) { idp.SetJWKSDown(true) }
	})
	err := e.p.Ready(e.ctx)
	require.ErrorIs(t, err, oidc.ErrNotReady)
	require.Contains(t, err.Error(), "503")
	require.Empty(t, e.p.AuthURL("s", "n", "c"))

	require.Eventually(t, func() bool { return e.idp.JWKSFetches() >= 3 }, 5*time.Second, 5*time.Millisecond,
		"retries in the background")
	require.Error(t, e.p.Ready(e.ctx))
	e.idp.SetJWKSDown(false)
	e.waitReady(t)

	_, err = e.redeem(t)
	require.NoError(t, err)
	assert.Equal(t, int64(1), e.idp.DiscoveryFetches(), "discovery is kept once it succeeded")
	logs := e.logs.String()
	assert.Equal(t, 1, strings.Count(logs, "level=WARN"), logs)
	assert.Contains(t, logs, "idp="+e.idp.Issuer())
	assert.Contains(t, logs, "identity provider ready")
}

func TestDiscoveryDownAtStart(t *testing.T) {
	e := newEnv(t, func(s *setup) {
		s.before = func(idp *oidctest.Provider) { idp.SetDiscoveryDown(true) }
	})
	require.ErrorIs(t, e.p.Ready(e.ctx), oidc.ErrNotReady)
	require.Eventually(t, func() bool { return e.idp.DiscoveryFetches() >= 3 }, 5*time.Second, 5*time.Millisecond)
	e.idp.SetDiscoveryDown(false)
	e.waitReady(t)
	_, err := e.redeem(t)
	require.NoError(t, err)
}

func TestIdPNeverUpCloseStopsRetry(t *testing.T) {
	idp := oidctest.NewTest(t, oidctest.Config{})
	cfg := idp.Identity()
	idp.Close()
	ctx, cancel := context.WithCancel(t.Context())
	p, err := oidc.New(ctx, cfg, redirectURL, oidc.Options{
		RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	require.ErrorIs(t, p.Ready(ctx), oidc.ErrNotReady)
	time.Sleep(30 * time.Millisecond)
	cancel() // the lifetime context ends the loop; Close then returns at once
	done := make(chan struct{})
	go func() { p.Close(); p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not return")
	}
	require.Empty(t, leaked(2*time.Second))
}

func TestMalformedKeyInJWKS(t *testing.T) {
	bad := []string{
		`{"kty":"RSA","kid":"broken-n","alg":"RS256","use":"sig","n":"!!!not base64!!!","e":"AQAB"}`,
		`{"kty":"RSA","kid":"no-e","alg":"RS256","use":"sig","n":"AQAB"}`,
		`{"kty":"EC","kid":"off-curve","alg":"ES256","crv":"P-256","x":"AQAB","y":"AQAB"}`,
		`{"kty":"oct","kid":"hmac","alg":"HS256","k":"c2VjcmV0"}`,
		`{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}`,
		`{"kty":17}`,
		`"not an object"`,
	}
	e := newEnv(t, func(s *setup) {
		s.before = func(idp *oidctest.Provider) {
			for _, b := range bad {
				idp.AddRawJWK(json.RawMessage(b))
			}
		}
	})
	require.NoError(t, e.p.Ready(e.ctx), "one bad key must not take the set down")
	for _, alg := range []string{"RS256", "ES256"} {
		require.NoError(t, e.idp.UseAlg(alg))
		_, err := e.redeem(t)
		require.NoError(t, err, alg)
	}
	logs := e.logs.String()
	for _, kid := range []string{"broken-n", "no-e", "off-curve", "hmac", "enc"} {
		assert.Contains(t, logs, "kid="+kid)
	}
	assert.Contains(t, logs, "symmetric key in a public JWK Set")

	// Only bad keys: nothing usable; the provider stays not ready.
	onlyBad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"keys":[`+bad[0]+`,`+bad[3]+`]}`)
	}))
	t.Cleanup(onlyBad.Close)
	e2 := newEnv(t, func(s *setup) {
		s.before = func(idp *oidctest.Provider) {
			idp.OnDiscovery(func(doc map[string]any) { doc["jwks_uri"] = onlyBad.URL })
		}
	})
	err := e2.p.Ready(e2.ctx)
	require.ErrorIs(t, err, oidc.ErrNotReady)
	require.Contains(t, err.Error(), "no usable signing key")
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	_, err := e.redeem(t)
	require.NoError(t, err)
	require.Equal(t, int64(1), e.idp.JWKSFetches())
	oldKID := e.idp.KID("RS256")

	kids, err := e.idp.RotateKeys(false) // old keys unpublished at once
	require.NoError(t, err)
	id, err := e.redeem(t)
	require.NoError(t, err, "the new kid is fetched on first sight")
	require.Equal(t, "user-42", id.Subject)
	require.Equal(t, int64(2), e.idp.JWKSFetches())
	require.NotEqual(t, oldKID, kids["RS256"])

	// A token still signed with the retired key: its kid is now unknown,
	// and the refresh limiter (1/min) refuses at once instead of blocking.
	e.idp.OnIssue(func(is *oidctest.Issue) { is.KID = oldKID })
	start := time.Now()
	_, err = e.redeem(t)
	requireRejected(t, err, "id token: unknown signing key")
	require.Less(t, time.Since(start), time.Second)
	require.Equal(t, int64(2), e.idp.JWKSFetches(), "rate-limited: no second refresh within a minute")
}

func TestJWKSOutageKeepsLastGoodKeys(t *testing.T) {
	e := newEnv(t)
	e.idp.SetJWKSDown(true)
	e.idp.OnIssue(func(is *oidctest.Issue) {
		var err error
		is.Raw, err = e.idp.ForeignToken(is.Claims, "RS256", "unknown")
		assert.NoError(t, err)
	})
	_, err := e.redeem(t) // triggers a refresh, which fails
	requireRejected(t, err, "id token: unknown signing key")
	require.Equal(t, int64(2), e.idp.JWKSFetches())
	require.NoError(t, e.p.Ready(e.ctx), "a failed refresh keeps the keys")
	e.idp.OnIssue(nil)
	_, err = e.redeem(t)
	require.NoError(t, err)
	require.Contains(t, e.logs.String(), "JWK Set refresh failed")
}

func TestErrorsNeverCarryTokens(t *testing.T) {
	e := newEnv(t)
	var raw string
	e.idp.OnIssue(func(is *oidctest.Issue) {
		is.Claims["aud"] = "someone-else"
		var err error
		raw, err = e.idp.Sign(is.Claims, is.KID)
		assert.NoError(t, err)
		is.Raw = raw
	})
	code, verifier, nonce := e.login(t)
	_, err := e.p.Redeem(e.ctx, code, verifier, nonce)
	require.Error(t, err)
	for _, s := range []string{raw, strings.Split(raw, ".")[1], code, verifier, nonce, e.idp.ClientSecret()} {
		require.NotContains(t, err.Error(), s)
		require.NotContains(t, e.logs.String(), s)
	}
}
