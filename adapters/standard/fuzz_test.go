package standard_test

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stepup-bridge/stepup-bridge/adapters/standard"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// FuzzParseWebhook: whatever arrives, ParseWebhook never panics, fails only
// with ErrUnauthenticated or ErrMalformed, and returns only events that
// hold the adapter's promises. With sign set, the body is signed correctly,
// so the fuzzer reaches the JSON parser; otherwise the signature header is
// the fuzzer's.
func FuzzParseWebhook(f *testing.F) {
	seeds := []string{
		`{"type":"conversation.started","timestamp":"2025-03-14T15:09:20Z","data":{"conversation_id":"c1","consumer_id":"u1","channel":"web"}}`,
		`{"type":"message.created","data":{"conversation_id":"c1","author":{"role":"consumer","id":"u1"},"text":"123 456 👋"}}`,
		`{"type":"message.created","data":{"conversation_id":"c1","author":{"role":"agent"},"text":"/verify"}}`,
		`{"type":"conversation.closed","data":{"conversation_id":"c1"}}`,
		`{"type":"contact.created","data":{"id":"x"}}`,
		`{"type":"message.created","data":{"conversation_id":"c1","author":"x"}}`,
		`{"type":5}`, `[]`, `null`, ``, `{"type":"conversation.closed","data":{"conversation_id":"\u0000"}}`,
	}
	for _, s := range seeds {
		f.Add("msg_1", int64(0), "", []byte(s), true)
	}
	f.Add("msg_1", int64(-400), "v1,AAAA v1a,BBBB", []byte(`{}`), false)
	f.Add("", int64(0), "v1,", []byte(nil), false)

	key := mustSecret(f, secretA)
	a, err := standard.New(config.StandardPlatform{WebhookSecrets: secrets(secretA)}, standard.Options{Clock: &fakeClock{now: t0}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id string, skew int64, sig string, body []byte, sign bool) {
		ts := t0.Add(time.Duration(skew) * time.Second)
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
		h.Set("webhook-signature", sig)
		if sign {
			h.Set("webhook-signature", standard.Sign(key, id, ts, body))
		}
		events, err := a.ParseWebhook(t.Context(), bridge.WebhookRequest{Header: h, Body: body})
		if err != nil {
			if !errors.Is(err, bridge.ErrUnauthenticated) && !errors.Is(err, bridge.ErrMalformed) {
				t.Fatalf("error wraps neither ErrUnauthenticated nor ErrMalformed: %v", err)
			}
			if events != nil {
				t.Fatalf("events with an error: %v", events)
			}
			return
		}
		if len(events) > 1 {
			t.Fatalf("%d events from one webhook", len(events))
		}
		for _, ev := range events {
			if ev.ID != id || ev.ID == "" || len(ev.ID) > standard.MaxIDBytes {
				t.Fatalf("event id %q for webhook-id %q", ev.ID, id)
			}
			if ev.Conversation == "" || len(ev.Conversation) > standard.MaxIDBytes || len(ev.Consumer) > standard.MaxIDBytes || len(ev.Channel) > standard.MaxIDBytes {
				t.Fatalf("ids out of bounds: %+v", ev)
			}
			if utf8.RuneCountInString(ev.Text) > standard.MaxTextRunes || !utf8.ValidString(ev.Text) {
				t.Fatalf("text out of bounds")
			}
			switch ev.Kind {
			case bridge.EventConversationStarted, bridge.EventConsumerMessage, bridge.EventAgentMessage, bridge.EventConversationClosed:
			default:
				t.Fatalf("kind %q", ev.Kind)
			}
			if ev.At.IsZero() {
				t.Fatalf("no time")
			}
		}
	})
}
