package config

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testEnv is the environment the testdata files see.
var testEnv = map[string]string{
	"ACME_CLIENT_SECRET":  "acme-oidc-client-secret-value",
	"ACME_API_KEY":        "acme-api-key-0123456789abcdefghijklmnop",
	"ACME_WEBHOOK_SECRET": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
	"REDIS_PASSWORD":      "redis-password-value",
	"SHORT_API_KEY":       "short-api-key-value",
	"EMPTY_SECRET":        "",
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

type expectation struct{ path, msg string }

// expectations reads the "# want: path: message" (problems, in order) and
// "# warn: path: message" (warnings, in order) lines of a testdata file;
// message is a substring of the actual message.
func expectations(t *testing.T, src string) (want, warn []expectation) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(src))
	for sc.Scan() {
		line := sc.Text()
		for prefix, list := range map[string]*[]expectation{"# want: ": &want, "# warn: ": &warn} {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				path, msg, ok := strings.Cut(rest, ": ")
				require.True(t, ok, "malformed expectation %q", line)
				*list = append(*list, expectation{path, msg})
			}
		}
	}
	require.False(t, len(want) > 0 && len(warn) > 0, "warnings are only returned with a valid configuration")
	return want, warn
}

func assertProblems(t *testing.T, want []expectation, got []Problem) {
	t.Helper()
	if !assert.Len(t, got, len(want), "got:\n%s", Problems(got).Error()) {
		return
	}
	for i, w := range want {
		assert.Equal(t, w.path, got[i].Path, "path of #%d", i)
		assert.Contains(t, got[i].Message, w.msg, "message of #%d (%s)", i, got[i].Path)
	}
}

// checks look further into the configurations of the valid testdata files.
var checks = map[string]func(*testing.T, *Config){
	"valid_minimal": func(t *testing.T, cfg *Config) {
		assert.Equal(t, minimalWithDefaults(), *cfg)
	},
	"file_secret": func(t *testing.T, cfg *Config) {
		b := cfg.Brands[0]
		// Exactly one trailing newline (\n or \r\n) is trimmed.
		assert.Equal(t, "file-client-secret-value\n", b.Identity.ClientSecret.Value)
		assert.Equal(t, "file-api-key-0123456789abcdefghijklmnop", b.APIKeys[0].Value)
		assert.Equal(t, testEnv["ACME_WEBHOOK_SECRET"], b.Platforms[0].Standard.WebhookSecrets[0].Value)
	},
	"notify_agents_false": func(t *testing.T, cfg *Config) {
		off, on := cfg.Brands[0].StepUp, cfg.Brands[1].StepUp
		assert.False(t, off.NotifyAgents)
		assert.Empty(t, off.NotifyMessage)
		assert.Empty(t, off.ConsumerMessage)
		assert.True(t, on.NotifyAgents, "the other brand keeps the default")
		assert.Equal(t, "Thanks, you are now verified.", on.ConsumerMessage)
	},
	"anchors": func(t *testing.T, cfg *Config) {
		acme, globex := cfg.Brands[0], cfg.Brands[1]
		assert.Equal(t, 15*time.Minute, acme.StepUp.LinkTTL)
		assert.Equal(t, 20*time.Minute, globex.StepUp.LinkTTL)
		assert.False(t, globex.StepUp.NotifyAgents)
		assert.Equal(t, "globex-bridge", globex.Identity.ClientID)
		assert.Equal(t, acme.Identity.Issuer, globex.Identity.Issuer)
		assert.Equal(t, testEnv["ACME_CLIENT_SECRET"], globex.Identity.ClientSecret.Value)
		assert.NotSame(t, acme.Platforms[0].Standard, globex.Platforms[0].Standard, "brands share no memory")
	},
	"redis_sentinel_ok": func(t *testing.T, cfg *Config) {
		assert.Equal(t, "redis-password-value", cfg.Store.Redis.Password.Value)
	},
}

func TestParse(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	dir, err := filepath.Abs("testdata")
	require.NoError(t, err)
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			require.NoError(t, err)
			src := strings.ReplaceAll(string(raw), "@TESTDATA@", dir)
			want, warn := expectations(t, src)

			cfg, err := Parse([]byte(src), lookup(testEnv))
			if len(want) == 0 {
				require.NoError(t, err)
				assertProblems(t, warn, cfg.Warnings)
				if check := checks[name]; check != nil {
					check(t, cfg)
				}
				return
			}
			assert.Nil(t, cfg)
			var ps Problems
			require.ErrorAs(t, err, &ps)
			assertProblems(t, want, ps)
			for _, v := range testEnv {
				if v != "" {
					assert.NotContains(t, err.Error(), v)
				}
			}
		})
	}
}

func TestParseChecksUsed(t *testing.T) {
	for name := range checks {
		assert.FileExists(t, filepath.Join("testdata", name+".yaml"))
	}
}

func minimalWithDefaults() Config {
	secret := func(name string) Secret { return Secret{Ref: "${" + name + "}", Value: testEnv[name]} }
	return Config{
		Server: Server{
			Listen:            ":8080",
			PublicURL:         "https://bridge.example.com",
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      15 * time.Second,
			IdleTimeout:       60 * time.Second,
			ShutdownTimeout:   20 * time.Second,
			MaxBodyBytes:      1 << 20,
			MaxHeaderBytes:    64 << 10,
			LogFormat:         "json",
			LogLevel:          "info",
		},
		Store: Store{
			Driver: "memory",
			Redis: Redis{
				DialTimeout:  5 * time.Second,
				ReadTimeout:  3 * time.Second,
				WriteTimeout: 3 * time.Second,
			},
			SessionTTL: 72 * time.Hour,
			DedupeTTL:  72 * time.Hour,
			Outbox: Outbox{
				Workers:        4,
				MaxAttempts:    110,
				MinBackoff:     time.Second,
				MaxBackoff:     time.Hour,
				CallTimeout:    10 * time.Second,
				ClaimIdle:      60 * time.Second,
				RetentionAfter: 168 * time.Hour,
			},
		},
		Brands: []Brand{{
			ID:      "acme",
			APIKeys: []Secret{secret("ACME_API_KEY")},
			Platforms: []Platform{{
				Type: "standard",
				Standard: &StandardPlatform{
					WebhookSecrets: []Secret{secret("ACME_WEBHOOK_SECRET")},
					Tolerance:      5 * time.Minute,
				},
			}},
			Identity: Identity{
				Type:         "oidc",
				Name:         "login.acme.example",
				Issuer:       "https://login.acme.example",
				ClientID:     "bridge",
				ClientSecret: secret("ACME_CLIENT_SECRET"),
				Scopes:       []string{"openid", "profile", "email"},
				Algorithms:   []string{"RS256", "ES256"},
				Leeway:       30 * time.Second,
				MaxTokenAge:  10 * time.Minute,
				HTTPTimeout:  10 * time.Second,
				Claims:       ClaimMapping{Subject: "sub", Name: "name", Email: "email"},
			},
			StepUp: StepUp{
				LinkTTL:            10 * time.Minute,
				Binding:            BindingConfirmCode,
				CodeTTL:            5 * time.Minute,
				CodeLength:         6,
				CodeAttempts:       3,
				MaxLinks:           5,
				AgentCommand:       "/verify",
				LinkMessage:        "Please verify your identity here: {{.URL}}",
				NotifyAgents:       true,
				NotifyMessage:      "Consumer verified: {{.Name}} ({{.Subject}}) via {{.Provider}} at {{.VerifiedAt}}",
				ConsumerMessage:    "Thanks, you are now verified.",
				LoginWindow:        30 * time.Minute,
				WrongCodeMessage:   "That code does not match. Please check the code on the sign-in page and type it again.",
				CodeLockedMessage:  "Too many wrong codes: that sign-in was cancelled for your security. Please ask for a new sign-in link.",
				CodeExpiredMessage: "That code has expired. Please ask for a new sign-in link.",
			},
		}},
	}
}

func TestParseMalformedYAML(t *testing.T) {
	for name, src := range map[string]string{
		"syntax":        "server: [unclosed\n",
		"tab indent":    "server:\n\tlisten: :8080\n",
		"two documents": "server: {}\n---\nserver: {}\n",
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse([]byte(src), lookup(testEnv))
			require.Error(t, err)
			assert.Nil(t, cfg)
			var ps Problems
			assert.False(t, errors.As(err, &ps), "a malformed document is not a list of problems")
		})
	}
}

func TestParseNotAMapping(t *testing.T) {
	_, err := Parse([]byte("- server\n"), lookup(testEnv))
	var ps Problems
	require.ErrorAs(t, err, &ps)
	// Nothing else is reported: without a mapping every setting is "missing".
	assert.Equal(t, Problems{{Path: "", Message: "expected a mapping, got a list"}}, ps)
}

func TestParseMergeCycle(t *testing.T) {
	// An anchor merged into itself must not recurse forever.
	src := "server: &s\n  public_url: https://bridge.example.com\n  <<: *s\n"
	_, err := Parse([]byte(src), lookup(testEnv))
	var ps Problems
	require.ErrorAs(t, err, &ps)
	assert.Equal(t, "server", ps[0].Path)
	assert.Contains(t, ps[0].Message, "<< merges a mapping into itself")
}

func TestLoad(t *testing.T) {
	t.Setenv("ACME_API_KEY", testEnv["ACME_API_KEY"])
	t.Setenv("ACME_WEBHOOK_SECRET", testEnv["ACME_WEBHOOK_SECRET"])
	t.Setenv("ACME_CLIENT_SECRET", testEnv["ACME_CLIENT_SECRET"])
	cfg, err := Load("testdata/valid_minimal.yaml")
	require.NoError(t, err)
	assert.Equal(t, minimalWithDefaults(), *cfg)

	_, err = Load("testdata/does-not-exist.yaml")
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestValidateBuiltInCode(t *testing.T) {
	cfg := minimalWithDefaults()
	require.NoError(t, cfg.Validate())

	cfg.Brands[0].Platforms = append(cfg.Brands[0].Platforms, Platform{Type: "standard"}, Platform{Type: "carrier-pigeon"})
	cfg.Brands[0].StepUp.Binding = BindingNone
	var ps Problems
	require.ErrorAs(t, cfg.Validate(), &ps)
	assert.Equal(t, Problems{
		{Path: "brands[0].platforms[1]", Message: `no settings for type "standard"`},
		{Path: "brands[0].platforms[1].type", Message: `duplicate platform type "standard" (also brands[0].platforms[0]): the type names the webhook path /webhooks/{brand}/standard`},
		{Path: "brands[0].platforms[2].type", Message: `unknown platform type "carrier-pigeon" (known: liveperson, standard)`},
	}, ps)
	require.Len(t, cfg.Warnings, 1)
	assert.Equal(t, "brands[0].step_up.binding", cfg.Warnings[0].Path)
}

func TestPlatformTypes(t *testing.T) {
	assert.Equal(t, []string{"liveperson", "standard"}, PlatformTypes())
	p := Platform{Type: "standard", Standard: &StandardPlatform{}}
	assert.Same(t, p.Standard, p.Settings())
	assert.Nil(t, Platform{Type: "standard"}.Settings(), "no typed nil in the interface")
	assert.Nil(t, Platform{Type: "nope"}.Settings())
}

func TestProblemsError(t *testing.T) {
	ps := Problems{{Path: "server.public_url", Message: "required"}, {Message: "top"}}
	assert.Equal(t, "server.public_url: required\ntop", ps.Error())
}

// FuzzParse: no input panics or hangs, and the result is a Config or an
// error, never both or neither.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	examples, _ := filepath.Glob("../deploy/examples/*.yaml")
	for _, file := range append(files, examples...) {
		data, err := os.ReadFile(file)
		require.NoError(f, err)
		f.Add(data)
	}
	noFiles := func(string) ([]byte, error) { return nil, fs.ErrNotExist }
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parse(data, lookup(testEnv), noFiles)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("cfg %v, err %v", cfg != nil, err)
		}
		var ps Problems
		if errors.As(err, &ps) && len(ps) == 0 {
			t.Fatal("empty Problems returned as an error")
		}
	})
}
