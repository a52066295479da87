package devidp_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/adapters/devidp"
	"github.com/stepup-bridge/stepup-bridge/adapters/oidc"
	"github.com/stepup-bridge/stepup-bridge/config"
)

const redirect = "http://127.0.0.1:1/callback/demo"

func start(t *testing.T) *devidp.Server {
	t.Helper()
	s, err := devidp.Start(devidp.Options{ClientID: "client", ClientSecret: "s3cret/+", RedirectURIs: []string{redirect}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "example.com:0"} {
		_, err := devidp.Start(devidp.Options{Addr: addr, ClientID: "c", ClientSecret: "s", RedirectURIs: []string{redirect}})
		if !errors.Is(err, devidp.ErrNotLoopback) {
			t.Errorf("Start(%q) = %v, want ErrNotLoopback", addr, err)
		}
	}
	ln, err := net.Listen("tcp", ":0") // all interfaces
	if err != nil {
		t.Fatal(err)
	}
	if _, err := devidp.Start(devidp.Options{Listener: ln, ClientID: "c", ClientSecret: "s", RedirectURIs: []string{redirect}}); !errors.Is(err, devidp.ErrNotLoopback) {
		t.Errorf("Start(listener on all interfaces) = %v, want ErrNotLoopback", err)
	}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}

// authorize runs the login page for the user (or cancel) and returns the
// callback URL the provider redirects to.
func authorize(t *testing.T, authURL, user string) *url.URL {
	t.Helper()
	resp, err := noRedirect.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "DEVELOPMENT ONLY") || !strings.Contains(string(page), "Alex Morgan") {
		t.Fatalf("login page: %d %s", resp.StatusCode, page)
	}
	m := regexp.MustCompile(`name="request" value="([^"]+)"`).FindStringSubmatch(string(page))
	if m == nil {
		t.Fatal("no request id on the login page")
	}
	form := url.Values{"request": {m[1]}}
	if user == "" {
		form.Set("cancel", "1")
	} else {
		form.Set("user", user)
	}
	u, _ := url.Parse(authURL)
	resp, err = noRedirect.PostForm(u.Scheme+"://"+u.Host+"/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("decision: status %d", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	return loc
}

func challenge(v string) string {
	s := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// TestBridgeOIDCAdapterInterop: the bridge's own OIDC adapter discovers the
// provider, runs a login against it and verifies the ID token.
func TestBridgeOIDCAdapterInterop(t *testing.T) {
	s := start(t)
	cfg := config.Identity{Type: "oidc", Issuer: s.Issuer(), ClientID: "client", ClientSecret: config.Secret{Value: "s3cret/+"},
		Scopes: []string{"openid", "profile"}, Algorithms: []string{"RS256"}, Leeway: time.Second, MaxTokenAge: time.Minute,
		Claims: config.ClaimMapping{Subject: "sub", Name: "name", Email: "email", Extra: map[string]string{"customer_id": "customer_id"}}}
	p, err := oidc.New(context.Background(), cfg, redirect, oidc.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	verifier := strings.Repeat("v", 50)
	loc := authorize(t, p.AuthURL("st", "n0nce", challenge(verifier)), "u-1001")
	q := loc.Query()
	if q.Get("state") != "st" || q.Get("iss") != s.Issuer() || q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}
	if _, err := p.Redeem(context.Background(), q.Get("code"), strings.Repeat("w", 50), "n0nce"); err == nil {
		t.Fatal("a wrong PKCE verifier was accepted")
	}
	// The code was spent by the failed attempt: a new login.
	loc = authorize(t, p.AuthURL("st2", "n0nce2", challenge(verifier)), "u-1001")
	id, err := p.Redeem(context.Background(), loc.Query().Get("code"), verifier, "n0nce2")
	if err != nil {
		t.Fatal(err)
	}
	if id.Name != "Alex Morgan" || id.Subject != "u-1001" || id.Claims["customer_id"] != "C-1001" || strings.Join(id.AMR, ",") != "pwd,otp" || id.AuthTime.IsZero() {
		t.Fatalf("identity %+v", id)
	}
	if _, err := p.Redeem(context.Background(), loc.Query().Get("code"), verifier, "n0nce2"); err == nil {
		t.Fatal("a code was redeemed twice")
	}
	loc = authorize(t, p.AuthURL("st3", "n0nce3", challenge(verifier)), "u-1001")
	if _, err := p.Redeem(context.Background(), loc.Query().Get("code"), verifier, "other-nonce"); err == nil {
		t.Fatal("an ID token for another nonce was accepted")
	}
}

func TestCancelAnswersAccessDenied(t *testing.T) {
	s := start(t)
	auth := s.Issuer() + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"client"}, "redirect_uri": {redirect},
		"scope": {"openid"}, "state": {"xyz"}, "nonce": {"n"}, "code_challenge": {challenge(strings.Repeat("a", 43))}, "code_challenge_method": {"S256"}}.Encode()
	q := authorize(t, auth, "").Query()
	if q.Get("error") != "access_denied" || q.Get("state") != "xyz" || q.Get("code") != "" {
		t.Fatalf("cancel redirect %v", q)
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	s := start(t)
	good := url.Values{"response_type": {"code"}, "client_id": {"client"}, "redirect_uri": {redirect},
		"scope": {"openid"}, "state": {"xyz"}, "nonce": {"n"}, "code_challenge": {challenge(strings.Repeat("a", 43))}, "code_challenge_method": {"S256"}}
	tests := []struct {
		name, key, value string
		page             bool // refused with a page, never redirected
		wantErr          string
	}{
		{"unknown client", "client_id", "other", true, ""},
		{"unregistered redirect", "redirect_uri", "http://127.0.0.1:2/evil", true, ""},
		{"plain PKCE", "code_challenge_method", "plain", false, "invalid_request"},
		{"no challenge", "code_challenge", "", false, "invalid_request"},
		{"no nonce", "nonce", "", false, "invalid_request"},
		{"implicit flow", "response_type", "token", false, "unsupported_response_type"},
		{"no openid", "scope", "profile", false, "invalid_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{}
			for k, v := range good {
				q[k] = v
			}
			q.Set(tt.key, tt.value)
			resp, err := noRedirect.Get(s.Issuer() + "/authorize?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if tt.page {
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
					t.Fatalf("status %d location %q", resp.StatusCode, resp.Header.Get("Location"))
				}
				return
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc.String(), redirect) || loc.Query().Get("error") != tt.wantErr {
				t.Fatalf("status %d location %q", resp.StatusCode, loc)
			}
		})
	}
}

func TestTokenClientAuthentication(t *testing.T) {
	s := start(t)
	for _, auth := range []string{"", "Basic " + base64.StdEncoding.EncodeToString([]byte("client:wrong"))} {
		req, _ := http.NewRequest(http.MethodPost, s.Issuer()+"/token", strings.NewReader("grant_type=authorization_code&code=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("auth %q: status %d, want 401", auth, resp.StatusCode)
		}
	}
}

func TestRefusesForeignHost(t *testing.T) {
	s := start(t)
	req, _ := http.NewRequest(http.MethodGet, s.Issuer()+"/jwks", nil)
	req.Host = "attacker.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("status %d, want 421", resp.StatusCode)
	}
}
