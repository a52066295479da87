package inbound

import (
	"strings"
	"testing"

	json "github.com/go-json-experiment/json/v1"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

func TestJSONError(t *testing.T) {
	type data struct {
		N  int      `json:"n"`
		S  string   `json:"s"`
		L  []string `json:"l"`
		Ok bool     `json:"ok"`
	}
	for _, tc := range []struct{ body, prefix, want string }{
		{`{"n":"secret-value"}`, "data.", "data.n: must be a JSON number, not string"},
		{`{"s":5}`, "", "s: must be a JSON string, not number"},
		{`{"l":{}}`, "", "l: must be a JSON array, not object"},
		{`{"ok":"x"}`, "", "ok: must be a JSON boolean, not string"},
		{`[1]`, "", "body: must be a JSON object"},
		{`[1]`, "data.", "data: must be an object"},
		{`{"n":`, "", "body: invalid JSON"},
		{`{"n" 1}`, "", "body: invalid JSON at byte"},
	} {
		var d data
		err := JSONError(tc.prefix, json.Unmarshal([]byte(tc.body), &d))
		require.ErrorIs(t, err, bridge.ErrMalformed, tc.body)
		assert.Contains(t, err.Error(), tc.want, tc.body)
		assert.NotContains(t, err.Error(), "secret-value", "input is never echoed")
	}
}

func TestCheckID(t *testing.T) {
	for _, tc := range []struct {
		v        string
		required bool
		want     string
	}{
		{"", true, "required"},
		{"", false, ""},
		{"c-42", true, ""},
		{strings.Repeat("a", 9), true, "9 bytes, at most 8 allowed"},
		{"a\nb", true, "contains control characters"},
		{"a\xffb", true, "not valid UTF-8"},
	} {
		err := CheckID("data.id", tc.v, tc.required, 8)
		if tc.want == "" {
			assert.NoError(t, err, tc.v)
			continue
		}
		require.ErrorIs(t, err, bridge.ErrMalformed)
		assert.Contains(t, err.Error(), "data.id: "+tc.want)
	}
}
