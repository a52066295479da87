package idpevents_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/stepup-bridge/stepup-bridge/adapters/idpevents"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// The fuzzers feed arbitrary bytes to each inbound parser and verifier
// through idpevents.New (as production builds them). Every one must never
// panic, must fail only with ErrUnauthenticated or ErrMalformed, and may
// only return records that satisfy the source's invariants. Seed corpora:
// testdata/fuzz/<FuzzName>/ plus the f.Add calls.

// fuzzClock is fixed at the Okta sample's delivery time, so the samples
// in the corpus are fresh.
var fuzzNow = time.Date(2023, 3, 26, 21, 6, 0, 0, time.UTC)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

func fuzzSource(f *testing.F, lc config.LoginEvents) idpevents.Source {
	f.Helper()
	lc.MaxEventAge, lc.Leeway, lc.HTTPTimeout = 10*time.Minute, 30*time.Second, 2*time.Second
	if lc.Algorithms == nil {
		lc.Algorithms = []string{"RS256", "ES256"}
	}
	lc.Claims = config.ClaimMapping{Subject: "sub", Name: "name", Email: "email"}
	src, err := idpevents.New(f.Context(), lc, idpevents.Options{Clock: fixedClock{fuzzNow}, Provider: "Acme", Issuer: "https://idp.example"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(src.Close)
	return src
}

func secrets(vs ...string) []config.Secret {
	var out []config.Secret
	for _, v := range vs {
		out = append(out, config.Secret{Value: v})
	}
	return out
}

// checkErr fails unless err is nil or one of the two client errors.
func checkErr(t *testing.T, err error) {
	if err != nil && !errors.Is(err, bridge.ErrUnauthenticated) && !errors.Is(err, bridge.ErrMalformed) {
		t.Fatalf("error is neither unauthenticated nor malformed (would be a 503): %v", err)
	}
}

func checkRecords(t *testing.T, recs []bridge.LoginRecord, verified bool) {
	for _, r := range recs {
		if r.Verified != verified || r.Identity.Subject == "" || len(r.Identity.Subject) > 255 ||
			r.At.Before(fuzzNow.Add(-11*time.Minute)) || r.At.After(fuzzNow.Add(time.Minute)) {
			t.Fatalf("record breaks the source's invariants: %+v", r)
		}
	}
}

func FuzzOktaParse(f *testing.F) {
	src := fuzzSource(f, config.LoginEvents{Type: "okta", Secrets: secrets(oktaSecret), AppInstances: []string{oktaApp}})
	for _, name := range []string{"okta-event-hook-user.session.start.json", "okta-event-hook-user.session.start.old-doc-54ad107.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(oktaBody(oktaEvent{UUID: "u", Type: "user.authentication.sso", Actor: "00u1", Result: "SUCCESS", App: oktaApp, Published: fuzzNow}))
	f.Add([]byte(`{"eventType":"com.okta.event_hook","data":{"events":[{}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, err := src.Parse(t.Context(), bridge.WebhookRequest{Header: http.Header{"Authorization": {oktaSecret}}, Body: body})
		checkErr(t, err)
		checkRecords(t, recs, false)
	})
}

func FuzzOktaChallenge(f *testing.F) {
	src := fuzzSource(f, config.LoginEvents{Type: "okta", Secrets: secrets(oktaSecret)})
	ch := src.(bridge.LoginEventChallenger)
	f.Add(oktaSecret, "Ypb-b0dU_h9Cy6gQ7aSl1C_t3CJ7DDnmx7wXd7xq")
	f.Add("", "x")
	f.Add(oktaSecret, "\x00\"<script>")
	f.Fuzz(func(t *testing.T, auth, value string) {
		got, err := ch.Challenge(t.Context(), bridge.WebhookRequest{Header: http.Header{"Authorization": {auth}, idpevents.OktaChallengeHeader: {value}}})
		checkErr(t, err)
		if err == nil && (auth != oktaSecret || got != value || len(got) > 256) {
			t.Fatalf("challenge answered for a wrong secret or altered: %q", got)
		}
	})
}

func FuzzKeycloakParse(f *testing.F) {
	src := fuzzSource(f, config.LoginEvents{Type: "keycloak", Secrets: secrets(kcSecret), Realm: "acme"})
	f.Add(keycloakBody("e-1", "access.LOGIN", "kc-user-1", "bridge", fuzzNow), true)
	f.Add(keycloakBody("e-2", "access.LOGIN_ERROR", "kc-user-1", "bridge", fuzzNow), true)
	f.Add([]byte(`{"type":"access.LOGIN","time":1,"authDetails":{"userId":"u"}}`), false)
	f.Fuzz(func(t *testing.T, body []byte, sign bool) {
		// Signed, the fuzzer reaches the parser; unsigned, the verifier.
		h := http.Header{"X-Keycloak-Signature": {keycloakSig("not-the-secret-not-the-secret-xxxx", body)}}
		if sign {
			h.Set("X-Keycloak-Signature", keycloakSig(kcSecret, body))
		}
		recs, err := src.Parse(t.Context(), bridge.WebhookRequest{Header: h, Body: body})
		checkErr(t, err)
		if !sign && (err == nil || len(recs) > 0) {
			t.Fatal("accepted with a wrong signature")
		}
		checkRecords(t, recs, true)
	})
}

func FuzzAuth0ActionToken(f *testing.F) {
	src := fuzzSource(f, config.LoginEvents{Type: "auth0", Issuer: hsIssuer, Secrets: secrets(hsSecret)})
	genuine, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "auth0|fuzz", "iss": hsIssuer, "iat": fuzzNow.Unix(), "exp": fuzzNow.Add(time.Minute).Unix(),
	}).SignedString([]byte(hsSecret))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(genuine))
	f.Add(tokenBody(genuine))
	f.Add([]byte(`{"token":"e30.e30."}`))
	f.Add([]byte("eyJhbGciOiJub25lIn0.e30."))
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, err := src.Parse(t.Context(), bridge.WebhookRequest{Body: body})
		checkErr(t, err)
		checkRecords(t, recs, true)
		for _, r := range recs {
			if r.Identity.Subject != "auth0|fuzz" {
				t.Fatalf("a token nobody signed verified: %+v", r)
			}
		}
	})
}

func FuzzJWTToken(f *testing.F) {
	// An EC key and a JWK Set served by httptest: RSA key generation is
	// very slow under the fuzzer's coverage instrumentation.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(key.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "ec-1", ALG: jwkset.AlgES256, USE: jwkset.UseSig}})
	if err != nil {
		f.Fatal(err)
	}
	set, _ := json.Marshal(map[string]any{"keys": []any{jwk.Marshal()}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(set) }))
	f.Cleanup(srv.Close)
	const iss, aud = "https://partner.example", "https://bridge.example/idp/acme/jwt"
	src := fuzzSource(f, config.LoginEvents{Type: "jwt", Issuer: iss, JWKSURI: srv.URL, Audience: aud})
	c := jwt.MapClaims{"iss": iss, "aud": aud, "sub": "jwt-fuzz", "iat": fuzzNow.Unix(), "exp": fuzzNow.Add(5 * time.Minute).Unix()}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = "ec-1"
	genuine, err := tok.SignedString(key)
	if err != nil {
		f.Fatal(err)
	}
	none := jwt.NewWithClaims(jwt.SigningMethodNone, c)
	noneRaw, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	f.Add([]byte(genuine))
	f.Add(tokenBody(genuine))
	f.Add(tokenBody(noneRaw))
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, err := src.Parse(t.Context(), bridge.WebhookRequest{Body: body})
		checkErr(t, err)
		checkRecords(t, recs, true)
		for _, r := range recs {
			if r.Identity.Subject != "jwt-fuzz" {
				t.Fatalf("a token nobody signed verified: %+v", r)
			}
		}
	})
}
