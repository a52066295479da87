package standard

import (
	"testing"

	"github.com/stepup-bridge/stepup-bridge/adapters/internal/jsoncompat"
)

// FuzzDecodeMatchesStdlib: the parser's decoder (go-json-experiment/json/v1)
// decodes every body into the parser's types as encoding/json does, and
// yields the same error text (see package jsoncompat).
func FuzzDecodeMatchesStdlib(f *testing.F) {
	for _, s := range []string{
		`{"type":"conversation.started","timestamp":"2025-03-14T15:09:20Z","data":{"conversation_id":"c1","consumer_id":"u1","channel":"web"}}`,
		`{"type":"message.created","data":{"conversation_id":"c1","author":{"role":"consumer","id":"u1"},"text":"123 456 \ud83d\udc4b"}}`,
		`{"TYPE":"message.created","Data":{"Conversation_ID":"c1","author":{"role":5}},"data":{"text":"x"}}`,
		`{"type":"message.created","data":{"conversation_id":"c1","author":"x"},"timestamp":7}`,
		`{"type":5}`, `[]`, `null`, ``, `{"type":"a",}`, `{"data":{"text":"\xff\u00e9"}}`, `{"type":"a"} x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []func() any{
			func() any { return new(inEnvelope) },
			func() any { return new(inHead) },
		} {
			if d := jsoncompat.Diff(body, v); d != "" {
				t.Fatalf("%T: %s", v(), d)
			}
		}
	})
}
