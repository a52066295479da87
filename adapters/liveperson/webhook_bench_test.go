package liveperson_test

import (
	"context"
	"net/http"
	"os"
	"testing"

	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// webhookSamples are the notifications the parse benchmark and the
// allocation budget measure.
var webhookSamples = []string{"ms.MessagingEventNotification.ContentEvent.consumer-text", "cqm.ExConversationChangeNotification.consumer-created"}

// sampleWebhooks builds an adapter (no agent user configured: no swap
// lookup) and a function giving each sample as a correctly signed request.
func sampleWebhooks(tb testing.TB) (*liveperson.Adapter, func(name string) bridge.WebhookRequest) {
	tb.Helper()
	secret := []byte("bench-app-secret-0123456789")
	a, err := liveperson.New(config.LivePersonPlatform{AccountID: "12345678", ClientID: "bench-app", ClientSecret: config.Secret{Value: string(secret)}}, liveperson.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return a, func(name string) bridge.WebhookRequest {
		body, err := os.ReadFile("testdata/" + name + ".json")
		if err != nil {
			tb.Fatal(err)
		}
		h := http.Header{}
		h.Set(liveperson.HeaderAccountID, "12345678")
		h.Set(liveperson.HeaderClientID, "bench-app")
		h.Set(liveperson.HeaderSignature, liveperson.Sign(secret, body, "sha1", false))
		return bridge.WebhookRequest{Header: h, Body: body}
	}
}

// BenchmarkParseWebhook is the adapter's inbound work per LivePerson
// notification: account, app and HMAC-SHA1 signature checks on the raw
// body, then the parse.
func BenchmarkParseWebhook(b *testing.B) {
	a, request := sampleWebhooks(b)
	for _, name := range webhookSamples {
		b.Run(name, func(b *testing.B) {
			req := request(name)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(req.Body)))
			for b.Loop() {
				evs, err := a.ParseWebhook(ctx, req)
				if err != nil || len(evs) != 1 {
					b.Fatal(len(evs), err)
				}
			}
		})
	}
}
