package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// validBrand is a correct brand; cases break one thing each.
const validBrand = `
  - id: acme
    api_keys: ["${T_API_KEY}"]
    platforms:
      - type: standard
        webhook_secrets: ["${T_WEBHOOK_SECRET}"]
    identity:
      issuer: https://login.acme.example
      client_id: bridge
      client_secret: ${T_CLIENT_SECRET}
`

const validServer = `server:
  public_url: https://bridge.example.com
brands:`

// dummySecret fits every kind of secret (API key, whsec_, client secret).
var dummySecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("dummy-secret-of-exactly-32-bytes"))

func setSecrets(t *testing.T) {
	for _, k := range []string{"T_API_KEY", "T_WEBHOOK_SECRET", "T_CLIENT_SECRET"} {
		t.Setenv(k, dummySecret)
	}
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return path
}

func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestCheckConfig(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		// want are the lines (YAML path: message) that must be in stderr;
		// none means the configuration is valid.
		want []string
	}{
		{"valid", validServer + validBrand, nil},
		{"unknown key", validServer + strings.Replace(validBrand, "client_id:", "clientid:", 1), []string{
			"brands[0].identity.clientid: unknown key (known: ",
			"brands[0].identity.client_id: required",
		}},
		{"missing issuer", validServer + strings.Replace(validBrand, "      issuer: https://login.acme.example\n", "", 1), []string{
			"brands[0].identity.issuer: required",
		}},
		{"non-https issuer", validServer + strings.Replace(validBrand, "https://login.acme.example", "http://login.acme.example", 1), []string{
			"brands[0].identity.issuer: must use https (http only for a loopback host",
		}},
		{"http issuer on loopback", validServer + strings.Replace(validBrand, "https://login.acme.example", "http://127.0.0.1:9000/oidc", 1), nil},
		{"http issuer on localhost", validServer + strings.Replace(validBrand, "https://login.acme.example", "http://localhost:9000", 1), nil},
		{"secret from an unset variable", validServer + strings.Replace(validBrand, "${T_CLIENT_SECRET}", "${T_UNSET_SECRET}", 1), []string{
			"brands[0].identity.client_secret: environment variable T_UNSET_SECRET is not set",
		}},
		{"public URL with a path", strings.Replace(validServer, "https://bridge.example.com", "https://bridge.example.com/stepup", 1) + validBrand, []string{
			"server.public_url: must not have a path",
		}},
		{"public URL with a trailing slash", strings.Replace(validServer, "https://bridge.example.com", "https://bridge.example.com/", 1) + validBrand, nil},
		{"duplicate brand id", validServer + validBrand + validBrand, []string{
			`brands[1].id: duplicate brand id "acme" (also brands[0])`,
		}},
		{"unknown platform type", validServer + strings.Replace(validBrand, "type: standard", "type: carrier-pigeon", 1), []string{
			`brands[0].platforms[0].type: unknown platform type "carrier-pigeon" (known: `,
		}},
		{"every problem at once", validServer + strings.NewReplacer(
			"https://login.acme.example", "http://login.acme.example",
			"${T_CLIENT_SECRET}", "${T_UNSET_SECRET}",
			"type: standard", "type: carrier-pigeon",
		).Replace(validBrand), []string{
			"brands[0].platforms[0].type: unknown platform type",
			"brands[0].identity.issuer: must use https",
			"brands[0].identity.client_secret: environment variable T_UNSET_SECRET is not set",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setSecrets(t)
			path := writeConfig(t, tt.yaml)
			stdout, stderr, err := runCmd(t, "check-config", "--config", path)
			if tt.want == nil {
				require.NoError(t, err, stderr)
				assert.Equal(t, path+": ok (1 brand(s), store memory)\n", stdout)
				assert.NotContains(t, stderr, dummySecret)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, errQuiet, "problems are printed, not returned")
			assert.Equal(t, 1, exitCode(err))
			assert.Empty(t, stdout)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			for _, w := range tt.want {
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, w)
				}
				assert.True(t, found, "want a line starting %q in:\n%s", w, stderr)
			}
			assert.Equal(t, path+": "+strconv.Itoa(len(lines)-1)+" problem(s)", lines[len(lines)-1], "one line per problem, then the count")
			assert.NotContains(t, stderr, dummySecret, "secret values never printed")
		})
	}

	t.Run("no --config", func(t *testing.T) {
		t.Setenv("STEPUP_CONFIG", "")
		_, _, err := runCmd(t, "check-config")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "--config")
	})
	t.Run("missing file", func(t *testing.T) {
		_, _, err := runCmd(t, "check-config", "--config", filepath.Join(t.TempDir(), "nope.yaml"))
		require.Error(t, err)
		assert.NotErrorIs(t, err, errQuiet)
		assert.Equal(t, 1, exitCode(err))
	})
	t.Run("not YAML", func(t *testing.T) {
		_, _, err := runCmd(t, "check-config", "--config", writeConfig(t, "server: [unclosed\n"))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "parse config")
	})
}

// TestCheckConfigExamples runs the command itself on every example in
// deploy/examples, the way an operator would: secrets from the environment
// and from files (config/examples_test.go checks the same files through
// the parser with stubbed secrets).
func TestCheckConfigExamples(t *testing.T) {
	files, err := filepath.Glob("../../deploy/examples/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	envRe := regexp.MustCompile(`\$\{(\w+)\}`)
	fileRe := regexp.MustCompile(`file:(/\S+)`)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			for _, m := range envRe.FindAllSubmatch(data, -1) {
				t.Setenv(string(m[1]), dummySecret)
			}
			// file: secrets point at absolute paths of the deployment:
			// move them under a temporary directory that holds them.
			root := t.TempDir()
			data = fileRe.ReplaceAllFunc(data, func(m []byte) []byte {
				p := filepath.Join(root, string(m[len("file:"):]))
				require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
				require.NoError(t, os.WriteFile(p, []byte(dummySecret+"\n"), 0o600))
				return []byte("file:" + p)
			})
			path := filepath.Join(root, filepath.Base(file))
			require.NoError(t, os.WriteFile(path, data, 0o600))

			stdout, stderr, err := runCmd(t, "check-config", "--config", path)
			require.NoError(t, err, stderr)
			assert.Regexp(t, `: ok \([1-9][0-9]* brand\(s\), store (memory|redis)\)\n$`, stdout)
			assert.NotContains(t, stderr, "warning", "examples show good practice")
		})
	}
}

func TestVersionAndUsage(t *testing.T) {
	stdout, _, err := runCmd(t, "version")
	require.NoError(t, err)
	assert.Regexp(t, `^stepup-bridge \S+ \(commit \S+, `+regexp.QuoteMeta(runtime.Version())+`\)\n$`, stdout)

	stdout, _, err = runCmd(t, "help")
	require.NoError(t, err)
	assert.Contains(t, stdout, "check-config")

	_, stderr, err := runCmd(t, "frobnicate")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown command "frobnicate"`)
	assert.Contains(t, stderr, "usage:")
	assert.Equal(t, 1, exitCode(err))
}

// TestServe runs `serve` on a free port, checks health, readiness and
// metrics, and shuts it down by cancelling the context as SIGTERM does.
func TestServe(t *testing.T) {
	t.Run("embedded default configuration", func(t *testing.T) {
		// The embedded default listens on 127.0.0.1:8080: only when free.
		const addr = "127.0.0.1:8080"
		require.Contains(t, string(defaultConfig), addr)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("%s is taken: %v", addr, err)
		}
		require.NoError(t, ln.Close())
		t.Setenv("STEPUP_CONFIG", "")
		serveAndStop(t, addr, "serve")
	})
	t.Run("default configuration on another port", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		path := writeConfig(t, strings.ReplaceAll(string(defaultConfig), "127.0.0.1:8080", addr))
		// serve is the default command: flags alone select it.
		serveAndStop(t, addr, "--config", path)
	})
}

func serveAndStop(t *testing.T, addr string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, &bytes.Buffer{}, &stderr) }()

	base := "http://" + addr
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			break
		}
		select {
		case err := <-done:
			if err != nil && strings.Contains(err.Error(), "address already in use") {
				t.Skipf("%s was taken meanwhile: %v", addr, err)
			}
			t.Fatalf("serve ended early: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "serve did not answer: %v\n%s", err, stderr.String())
	}
	for path, want := range map[string]int{"/readyz": 200, "/metrics": 200, "/login/acme/AAAAAAAAAAAAAAAAAAAAAAAA": 404, "/nope": 404} {
		resp, err := client.Get(base + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, want, resp.StatusCode, path)
	}

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on cancel")
	}
	logs := stderr.String()
	assert.Contains(t, logs, "stepup-bridge listening")
	assert.Contains(t, logs, "in-memory store")
	assert.Contains(t, logs, "shutting down")
	_, err := client.Get(base + "/healthz")
	assert.Error(t, err, "the listener is closed")
}
