package standard

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// Hot-path benchmarks of the inbound webhook: signature check, event
// parsing, and both through the adapter as the service calls it. Compare
// runs with deploy/bench.sh and benchstat (BENCHMARKS.md).

// benchBody is a typical consumer message (the load generator's shape).
var benchBody = []byte(`{"type":"message.created","timestamp":"2026-11-26T09:00:00.123456789Z","data":{"conversation_id":"lg1234r-c4711","consumer_id":"anon-lg1234r-c4711","channel":"web","author":{"role":"consumer","id":"anon-lg1234r-c4711"},"text":"I was charged twice for the same order, can you check please"}}`)

func benchSecret(b testing.TB) (string, []byte) {
	b.Helper()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	s := SecretPrefix + base64.StdEncoding.EncodeToString(raw)
	key, err := ParseSecret(s)
	if err != nil {
		b.Fatal(err)
	}
	return s, key
}

func benchHeader(key []byte, now time.Time) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	SignHeader(h, key, "msg_2Lh8x0S1bQm3yTz9", now, benchBody)
	return h
}

func BenchmarkVerify(b *testing.B) {
	_, key := benchSecret(b)
	_, other := benchSecret(b)
	now := time.Now()
	h := benchHeader(key, now)
	for _, bc := range []struct {
		name    string
		secrets [][]byte
	}{
		{"secrets=1", [][]byte{key}},
		{"secrets=2", [][]byte{other, key}}, // during a rotation
	} {
		b.Run(bc.name, func(b *testing.B) {
			keys := newKeyring(bc.secrets) // pooled, as the adapter holds them
			b.ReportAllocs()
			b.SetBytes(int64(len(benchBody)))
			for b.Loop() {
				if _, err := verify(keys, h, benchBody, now, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSign(b *testing.B) {
	_, key := benchSecret(b)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = Sign(key, "msg_2Lh8x0S1bQm3yTz9", now, benchBody)
	}
}

func BenchmarkParseEvent(b *testing.B) {
	at := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		evs, err := parseEvent("msg_2Lh8x0S1bQm3yTz9", benchBody, at)
		if err != nil || len(evs) != 1 {
			b.Fatal(err)
		}
	}
}

type benchClock struct{ t time.Time }

func (c benchClock) Now() time.Time { return c.t }

// benchWebhook builds an adapter and a correctly signed request for
// benchBody (the benchmark and the allocation budget measure these).
func benchWebhook(tb testing.TB) (*Adapter, bridge.WebhookRequest) {
	tb.Helper()
	secret, key := benchSecret(tb)
	now := time.Now()
	a, err := New(config.StandardPlatform{WebhookSecrets: []config.Secret{{Value: secret}}}, Options{Clock: benchClock{now}})
	if err != nil {
		tb.Fatal(err)
	}
	return a, bridge.WebhookRequest{Header: benchHeader(key, now), Body: benchBody, Origin: "http://127.0.0.1", Target: "/webhooks/acme/standard", Received: now}
}

// BenchmarkParseWebhook is the adapter's whole inbound work per request:
// verify on the raw body, then parse.
func BenchmarkParseWebhook(b *testing.B) {
	a, req := benchWebhook(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		evs, err := a.ParseWebhook(ctx, req)
		if err != nil || len(evs) != 1 {
			b.Fatal(err)
		}
	}
}
