package liveperson

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// vectors are LivePerson's own (reference samples, from
// LivePersonInc/lp-demo-app-connector-api test/notifications.test.js).
type vectors struct {
	ClientSecret string            `json:"client_secret"`
	Headers      map[string]string `json:"headers"`
	Vectors      []struct {
		BodyFile  string `json:"body_file"`
		Signature string `json:"x-liveperson-signature"`
	} `json:"vectors"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "signature-vectors.json"))
	require.NoError(t, err)
	var v vectors
	require.NoError(t, json.Unmarshal(raw, &v))
	require.Len(t, v.Vectors, 2)
	return v
}

func vectorHeader(v vectors, sig string) http.Header {
	h := http.Header{}
	for k, val := range v.Headers {
		h.Set(k, val)
	}
	h.Set(HeaderSignature, sig)
	return h
}

func TestVerifyRealVectors(t *testing.T) {
	v := loadVectors(t)
	for _, vec := range v.Vectors {
		t.Run(vec.BodyFile, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", vec.BodyFile))
			require.NoError(t, err)
			acc, cli := v.Headers["x-liveperson-account-id"], v.Headers["x-liveperson-client-id"]
			require.NoError(t, Verify(vectorHeader(v, vec.Signature), body, acc, cli, []byte(v.ClientSecret)))
			// Our signer reproduces LivePerson's value exactly.
			assert.Equal(t, vec.Signature, Sign([]byte(v.ClientSecret), body, "sha1", false))

			// One byte more (a re-serialisation's trailing newline) fails.
			err = Verify(vectorHeader(v, vec.Signature), append(body, '\n'), acc, cli, []byte(v.ClientSecret))
			assert.ErrorIs(t, err, ErrBadSignature)
			assert.ErrorIs(t, err, bridge.ErrUnauthenticated)
		})
	}
}

func TestVerifyForms(t *testing.T) {
	secret := []byte("rl9hacst6kqilbofup64n11ga3")
	// Emoji and other non-ASCII, signed as raw UTF-8 bytes.
	body := []byte(`{"kind":"notification","body":{"changes":[{"event":{"message":"Grüß Gott 👋 — ¿qué tal? 日本語"}}]},"type":"ms.MessagingEventNotification"}`)
	h := func(sig string) http.Header {
		return http.Header{HeaderAccountID: {"42257269"}, HeaderClientID: {"app-1"}, HeaderSignature: {sig}}
	}
	mac256 := hmac.New(sha256.New, secret)
	mac256.Write(body)
	sum256 := mac256.Sum(nil)
	// The same bytes read as ASCII/Latin-1 and re-encoded (the C# adapter's bug).
	latin1 := []byte(string([]rune(string(body))))
	for i := range latin1 {
		if latin1[i] > 127 {
			latin1[i] = '?'
		}
	}

	tests := []struct {
		name   string
		header http.Header
		body   []byte
		want   error
	}{
		{"sha1 base64", h(Sign(secret, body, "sha1", false)), body, nil},
		{"sha1 hex", h(Sign(secret, body, "sha1", true)), body, nil},
		{"sha256 base64", h("sha256=" + base64.StdEncoding.EncodeToString(sum256)), body, nil},
		{"sha256 hex", h("sha256=" + hex.EncodeToString(sum256)), body, nil},
		{"sha256 hex upper case", h("sha256=" + strings.ToUpper(hex.EncodeToString(sum256))), body, nil},
		{"sha256 base64 unpadded", h("sha256=" + base64.RawStdEncoding.EncodeToString(sum256)), body, nil},
		{"algorithm prefix upper case", h("SHA1=" + strings.TrimPrefix(Sign(secret, body, "sha1", false), "sha1=")), body, nil},
		{"sha256 digest under sha1 prefix", h("sha1=" + hex.EncodeToString(sum256)), body, ErrBadSignature},
		{"sha1 digest under sha256 prefix", h("sha256=" + strings.TrimPrefix(Sign(secret, body, "sha1", true), "sha1=")), body, ErrBadSignature},
		{"ASCII-mangled body", h(Sign(secret, body, "sha1", false)), latin1, ErrBadSignature},
		{"wrong secret", h(Sign([]byte("other"), body, "sha1", false)), body, ErrBadSignature},
		{"unknown algorithm", h("md5=" + base64.StdEncoding.EncodeToString(make([]byte, 16))), body, ErrBadSignature},
		{"no prefix", h(strings.TrimPrefix(Sign(secret, body, "sha1", false), "sha1=")), body, ErrBadSignature},
		{"garbage digest", h("sha1=!!!!"), body, ErrBadSignature},
		{"empty signature", h(""), body, ErrMissingHeader},
		{"no account header", http.Header{HeaderClientID: {"app-1"}, HeaderSignature: {Sign(secret, body, "sha1", false)}}, body, ErrMissingHeader},
		{"no client header", http.Header{HeaderAccountID: {"42257269"}, HeaderSignature: {Sign(secret, body, "sha1", false)}}, body, ErrMissingHeader},
		{"wrong account", http.Header{HeaderAccountID: {"99999999"}, HeaderClientID: {"app-1"}, HeaderSignature: {Sign(secret, body, "sha1", false)}}, body, ErrWrongAccount},
		{"wrong client", http.Header{HeaderAccountID: {"42257269"}, HeaderClientID: {"app-2"}, HeaderSignature: {Sign(secret, body, "sha1", false)}}, body, ErrWrongClient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.header, tc.body, "42257269", "app-1", secret)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			assert.ErrorIs(t, err, bridge.ErrUnauthenticated)
			assert.NotContains(t, err.Error(), string(secret))
		})
	}
}
