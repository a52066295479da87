package standard

import (
	"errors"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// TestParseEventErrorsExact pins parseEvent's whole error text (not just a
// substring) and which bodies are ignored, including bodies with several
// faults, where which one is named depends on the order of the checks:
// type and timestamp are checked before data whatever the key order, and
// data's shape matters only for the types the bridge uses.
func TestParseEventErrorsExact(t *testing.T) {
	at := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	const m = "malformed request: "
	cases := []struct {
		name, body string
		want       string // "" for no events and no error
	}{
		// Types the bridge does not use are ignored whatever their data.
		{"unknown, data.author a string", `{"type":"contact.created","data":{"author":"x"}}`, ""},
		{"unknown, data.author.role a number", `{"type":"contact.created","data":{"conversation_id":"c1","author":{"role":5}}}`, ""},
		{"unknown, data.conversation_id a number", `{"type":"contact.created","data":{"conversation_id":42}}`, ""},
		{"unknown, data.text an array", `{"type":"contact.created","data":{"text":["a"]}}`, ""},
		{"unknown, data an array", `{"type":"invoice.paid","data":[1,2,3]}`, ""},
		{"unknown, data an empty array", `{"type":"invoice.paid","data":[]}`, ""},
		{"unknown, data a string", `{"type":"invoice.paid","data":"x"}`, ""},
		{"unknown, data a number", `{"type":"invoice.paid","data":5}`, ""},
		{"unknown, data a boolean", `{"type":"invoice.paid","data":true}`, ""},
		{"unknown, data null", `{"type":"invoice.paid","data":null}`, ""},
		{"unknown, no data", `{"type":"invoice.paid"}`, ""},
		{"unknown, odd data before type", `{"data":{"author":"x"},"type":"contact.created"}`, ""},
		{"unknown, odd data, bad timestamp", `{"type":"contact.created","timestamp":"yesterday","data":{"author":"x"}}`, ""},
		{"unknown, odd data, empty timestamp", `{"data":[],"type":"contact.created","timestamp":""}`, ""},

		// data itself.
		{"data an empty array", `{"type":"conversation.started","data":[]}`, m + "data: must be an object"},
		{"data an array", `{"type":"conversation.closed","data":[{"conversation_id":"c1"}]}`, m + "data: must be an object"},
		{"data a string", `{"type":"conversation.started","data":"x"}`, m + "data: must be an object"},
		{"data a number", `{"type":"message.created","data":5}`, m + "data: must be an object"},
		{"data a boolean", `{"type":"message.created","data":false}`, m + "data: must be an object"},
		{"data null", `{"type":"conversation.started","data":null}`, m + "data: required"},
		{"data null with spaces", `{"type":"conversation.started","data": null }`, m + "data: required"},
		{"no data", `{"type":"conversation.started"}`, m + "data: required"},
		{"data empty", `{"type":"conversation.started","data":{}}`, m + "data.conversation_id: required"},

		// A wrong type inside data: the full path.
		{"author.role a number", `{"type":"message.created","data":{"conversation_id":"c1","author":{"role":5}}}`, m + "data.author.role: must be a JSON string, not number"},
		{"author.role a number, keys in another case", `{"TYPE":"message.created","Data":{"conversation_id":"c1","Author":{"role":5}}}`, m + "Data.Author.role: must be a JSON string, not number"},
		{"a wrong type in data as an array", `{"type":"message.created","DATA":[1]}`, m + "data: must be an object"},
		{"author.id a number", `{"type":"message.created","data":{"conversation_id":"c1","author":{"role":"consumer","id":7}}}`, m + "data.author.id: must be a JSON string, not number"},
		{"author an array", `{"type":"message.created","data":{"conversation_id":"c1","author":[]}}`, m + "data.author: must be a JSON object, not array"},
		{"author a string", `{"type":"message.created","data":{"conversation_id":"c1","author":"x"}}`, m + "data.author: must be a JSON object, not string"},
		{"consumer_id an object", `{"type":"conversation.started","data":{"conversation_id":"c1","consumer_id":{}}}`, m + "data.consumer_id: must be a JSON string, not object"},
		{"channel a boolean", `{"type":"conversation.started","data":{"conversation_id":"c1","channel":true}}`, m + "data.channel: must be a JSON string, not bool"},
		{"conversation_id a number, closed", `{"type":"conversation.closed","data":{"conversation_id":42}}`, m + "data.conversation_id: must be a JSON string, not number"},
		{"first wrong type in data wins", `{"type":"message.created","data":{"text":5,"author":"x"}}`, m + "data.text: must be a JSON string, not number"},
		{"wrong type in data before a missing id", `{"type":"message.created","data":{"author":{"role":1}}}`, m + "data.author.role: must be a JSON string, not number"},

		// type.
		{"no type", `{"data":{"conversation_id":"c1"}}`, m + "type: required"},
		{"type empty", `{"type":"","data":{"conversation_id":"c1"}}`, m + "type: required"},
		{"type null", `{"type":null,"data":{"conversation_id":"c1"}}`, m + "type: required"},
		{"type a number", `{"type":5,"data":{}}`, m + "type: must be a JSON string, not number"},
		{"type a boolean", `{"type":true}`, m + "type: must be a JSON string, not bool"},
		{"type an object", `{"type":{"a":1}}`, m + "type: must be a JSON string, not object"},
		{"type an array", `{"type":["message.created"]}`, m + "type: must be a JSON string, not array"},
		{"body null", `null`, m + "type: required"},
		{"body an object without keys", `{}`, m + "type: required"},

		// Several faults: type and timestamp come first, whatever the order.
		{"type a number after data an array", `{"data":[],"type":5}`, m + "type: must be a JSON string, not number"},
		{"type a number after a wrong type in data", `{"data":{"author":"x"},"type":5}`, m + "type: must be a JSON string, not number"},
		{"type a number before data an array", `{"type":5,"data":[]}`, m + "type: must be a JSON string, not number"},
		{"type empty after data an array", `{"data":[],"type":""}`, m + "type: required"},
		{"type empty after a wrong type in data", `{"data":{"conversation_id":1},"type":""}`, m + "type: required"},
		{"no type, data an array", `{"data":[]}`, m + "type: required"},
		{"timestamp a number after data an array", `{"type":"message.created","data":[],"timestamp":5}`, m + "timestamp: must be a JSON string, not number"},
		{"timestamp a number after a wrong type in data", `{"type":"message.created","data":{"author":"x"},"timestamp":5}`, m + "timestamp: must be a JSON string, not number"},
		{"unknown type, timestamp a number after a wrong type in data", `{"type":"contact.created","data":{"author":"x"},"timestamp":5}`, m + "timestamp: must be a JSON string, not number"},
		{"unknown type, timestamp a number", `{"type":"contact.created","timestamp":5}`, m + "timestamp: must be a JSON string, not number"},
		{"unknown type, timestamp an object after data an array", `{"type":"contact.created","data":[],"timestamp":{}}`, m + "timestamp: must be a JSON string, not object"},
		{"unknown type, timestamp an array after a wrong type in data", `{"type":"contact.created","data":{"text":1},"timestamp":[1]}`, m + "timestamp: must be a JSON string, not array"},
		{"unknown type, timestamp a boolean before data an array", `{"timestamp":true,"type":"contact.created","data":[]}`, m + "timestamp: must be a JSON string, not bool"},
		{"bad timestamp after data an array", `{"type":"message.created","data":[],"timestamp":"yesterday"}`, m + "timestamp: not an RFC 3339 date-time"},
		{"bad timestamp after a wrong type in data", `{"data":{"author":"x"},"type":"message.created","timestamp":"yesterday"}`, m + "timestamp: not an RFC 3339 date-time"},
		{"empty timestamp", `{"type":"conversation.closed","timestamp":"","data":{"conversation_id":"c1"}}`, m + "timestamp: not an RFC 3339 date-time"},
		{"bad timestamp, no data", `{"type":"conversation.closed","timestamp":"yesterday"}`, m + "timestamp: not an RFC 3339 date-time"},
		{"type a number after timestamp a boolean", `{"timestamp":false,"type":5}`, m + "timestamp: must be a JSON string, not bool"},

		// The body.
		{"body an array", `[1,2]`, m + "body: must be a JSON object"},
		{"body a string", `"x"`, m + "body: must be a JSON object"},
		{"body a number", `5`, m + "body: must be a JSON object"},
		{"empty body", ``, m + "body: invalid JSON at byte 0"},
		{"truncated", `{"type":`, m + "body: invalid JSON at byte 8"},
		{"syntax error in data", `{"type":"conversation.closed","data":[}`, m + "body: invalid JSON at byte 39"},
		{"syntax error after a wrong type", `{"type":5,"data":{"author":"x"},}`, m + "body: invalid JSON at byte 33"},
		{"syntax error, unknown type", `{"type":"contact.created","data":{"author":x}}`, m + "body: invalid JSON at byte 44"},
		{"trailing data, unknown type", `{"type":"contact.created","data":[]} {}`, m + "body: invalid JSON at byte 38"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			events, err := parseEvent("msg_1", []byte(tc.body), at)
			if events != nil {
				t.Errorf("events %v, want none", events)
			}
			if tc.want == "" {
				if err != nil {
					t.Errorf("error %q, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error %q, want %q", err, tc.want)
			}
			if !errors.Is(err, bridge.ErrMalformed) {
				t.Errorf("error %q does not wrap ErrMalformed", err)
			}
		})
	}
}

// TestParseEventNullTimestamp: a null timestamp is no timestamp.
func TestParseEventNullTimestamp(t *testing.T) {
	at := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	events, err := parseEvent("msg_1", []byte(`{"type":"conversation.closed","timestamp":null,"data":{"conversation_id":"c1"}}`), at)
	if err != nil || len(events) != 1 || !events[0].At.Equal(at) {
		t.Fatalf("events %v, error %v", events, err)
	}
}
