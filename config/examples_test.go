package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExamples loads every example configuration, so that one that rots
// fails CI. Each ${NAME} and file: it references gets a dummy value valid
// for any kind of secret (API key, whsec_, password).
func TestExamples(t *testing.T) {
	dummy := "whsec_" + base64.StdEncoding.EncodeToString([]byte("dummy-secret-of-exactly-32-bytes"))
	files, err := filepath.Glob("../deploy/examples/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			refs := map[string]bool{}
			for _, m := range regexp.MustCompile(`\$\{(\w+)\}`).FindAllSubmatch(data, -1) {
				refs[string(m[1])] = true
			}
			env := func(name string) (string, bool) { return dummy, refs[name] }
			readFile := func(string) ([]byte, error) { return []byte(dummy + "\n"), nil }

			cfg, err := parse(data, env, readFile)
			require.NoError(t, err)
			assert.Empty(t, cfg.Warnings, "examples show good practice")
			assert.NotEmpty(t, cfg.Brands)
		})
	}
}
