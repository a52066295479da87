package config

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestSecretPrinting(t *testing.T) {
	env := Secret{Ref: "${CLIENT_SECRET}", Value: "v1"}
	file := Secret{Ref: "file:/run/secrets/x", Value: "v2"}
	inline := Secret{Ref: "v3", Value: "v3"}
	built := Secret{Value: "v4"} // set in code
	for _, tc := range []struct {
		s             Secret
		str, goString string
	}{
		{env, "${CLIENT_SECRET}", `config.Secret{Ref: "${CLIENT_SECRET}"}`},
		{file, "file:/run/secrets/x", `config.Secret{Ref: "file:/run/secrets/x"}`},
		{inline, "[redacted]", "config.Secret{/* redacted */}"},
		{built, "[redacted]", "config.Secret{/* redacted */}"},
		{Secret{}, "", "config.Secret{}"},
	} {
		assert.Equal(t, tc.str, tc.s.String())
		assert.Equal(t, tc.str, fmt.Sprintf("%v|%+v|%s|%d|%x", tc.s, tc.s, tc.s, tc.s, tc.s)[:len(tc.str)])
		assert.Equal(t, tc.goString, fmt.Sprintf("%#v", tc.s))
		assert.Equal(t, tc.goString, tc.s.GoString())
		assert.Equal(t, fmt.Sprintf("%q", tc.str), fmt.Sprintf("%q", tc.s))
		assert.Equal(t, slog.KindString, tc.s.LogValue().Kind())
		assert.Equal(t, tc.str, tc.s.LogValue().String())
		j, err := json.Marshal(tc.s)
		require.NoError(t, err)
		assert.JSONEq(t, fmt.Sprintf("%q", tc.str), string(j))
	}
	assert.True(t, env.IsSet())
	assert.False(t, Secret{Ref: "${UNRESOLVED}"}.IsSet())
}

// TestSecretsNeverPrinted loads secrets from every source and checks that no
// way of printing, logging or encoding the configuration or its problems
// shows one.
func TestSecretsNeverPrinted(t *testing.T) {
	whsec := "whsec_" + base64.StdEncoding.EncodeToString([]byte("canary-webhook-secret-32-bytes!!"))
	env := map[string]string{
		"CLIENT_SECRET":  "canary-client-secret",
		"API_KEY":        "canary-api-key-0123456789abcdefghijkl",
		"WEBHOOK_SECRET": whsec,
		"REDIS_PASSWORD": "canary-redis-password",
	}
	fileSecret := filepath.Join(t.TempDir(), "endpoint_secret")
	fileWhsec := "whsec_" + base64.StdEncoding.EncodeToString([]byte("canary-endpoint-secret-32-bytes!"))
	require.NoError(t, os.WriteFile(fileSecret, []byte(fileWhsec+"\n"), 0o600))
	const inlineKey = "canary-inline-api-key-0123456789abcdef"
	secrets := []string{inlineKey, fileWhsec, "canary"}
	for _, v := range env {
		secrets = append(secrets, v)
	}

	src := `
server:
  public_url: https://bridge.example.com
store:
  driver: redis
  redis:
    addrs: [localhost:6379]
    password: ${REDIS_PASSWORD}
brands:
  - id: acme
    api_keys:
      - ${API_KEY}
      - ` + inlineKey + `
    platforms:
      - type: standard
        webhook_secrets:
          - ${WEBHOOK_SECRET}
        endpoint: https://hooks.acme.example/bridge
        endpoint_secret: file:` + fileSecret + `
    identity:
      issuer: https://login.acme.example
      client_id: bridge
      client_secret: ${CLIENT_SECRET}
`
	cfg, err := Parse([]byte(src), lookup(env))
	require.NoError(t, err)
	std := cfg.Brands[0].Platforms[0].Standard
	require.Equal(t, fileWhsec, std.EndpointSecret.Value, "the secrets were resolved")

	var outputs []string
	for _, v := range []any{cfg, *cfg, std, *std, cfg.Brands, cfg.Brands[0].Platforms, cfg.Store.Redis, cfg.Brands[0].APIKeys, cfg.Warnings} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
			outputs = append(outputs, fmt.Sprintf(verb, v))
		}
	}
	j, err := json.Marshal(cfg)
	require.NoError(t, err)
	y, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		slog.New(h).Info("loaded", "config", cfg, "brand", cfg.Brands[0], "secret", cfg.Brands[0].Identity.ClientSecret)
	}
	outputs = append(outputs, string(j), string(y), logs.String())

	all := strings.Join(outputs, "\n")
	for _, s := range secrets {
		assert.NotContains(t, all, s)
	}
	// What is printed instead.
	assert.Contains(t, string(j), `"${CLIENT_SECRET}"`)
	assert.Contains(t, logs.String(), `"${CLIENT_SECRET}"`)
	assert.Contains(t, all, "[redacted]")
	assert.Contains(t, all, "file:"+fileSecret)
	assert.Contains(t, fmt.Sprintf("%v", cfg), "${WEBHOOK_SECRET}", "platform settings print by value")

	// Problems about secrets do not show them either.
	bad := strings.NewReplacer(
		"${API_KEY}", "canary-short",
		"${WEBHOOK_SECRET}", "whsec_"+base64.StdEncoding.EncodeToString([]byte("canary")),
		"https://hooks.acme.example", "https://user:canary-url-password@hooks.acme.example",
	).Replace(src)
	_, err = Parse([]byte(bad), lookup(env))
	require.Error(t, err)
	text := err.Error() + fmt.Sprintf("%v %+v %#v", err, err, err)
	assert.Contains(t, text, "brands[0].api_keys[0]: too short")
	assert.Contains(t, text, "brands[0].platforms[0].webhook_secrets[0]: must be whsec_")
	assert.Contains(t, text, "brands[0].platforms[0].endpoint: must not contain credentials")
	assert.NotContains(t, text, "canary")
	assert.NotContains(t, text, base64.StdEncoding.EncodeToString([]byte("canary")))
}
