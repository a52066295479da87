package liveperson

import (
	"testing"

	"github.com/stepup-bridge/stepup-bridge/adapters/internal/jsoncompat"
)

// FuzzDecodeMatchesStdlib: the parsers' decoder (go-json-experiment/json/v1)
// decodes every body into the parsers' types as encoding/json does, and
// yields the same error text (see package jsoncompat). The reference parser
// decodes each change and message text from the body's bytes, so the same
// types are tried on the whole body. The one-pass parser falls back on any
// error: for its envelope only success and the values must match.
func FuzzDecodeMatchesStdlib(f *testing.F) {
	addParseSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		if d := jsoncompat.DiffValues(body, func() any { return new(fastEnvelope) }); d != "" {
			t.Fatalf("fastEnvelope: %s", d)
		}
		for _, v := range []func() any{
			func() any { return new(envelope) },
			func() any { return new(msChange) },
			func() any { return new(cqmChange) },
			func() any { return new(string) },
		} {
			if d := jsoncompat.Diff(body, v); d != "" {
				t.Fatalf("%T: %s", v(), d)
			}
		}
	})
}
