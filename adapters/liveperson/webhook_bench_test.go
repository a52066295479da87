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

// BenchmarkParseWebhook is the adapter's inbound work per LivePerson
// notification: account, app and HMAC-SHA1 signature checks on the raw
// body, then the parse (no agent user configured: no swap lookup).
func BenchmarkParseWebhook(b *testing.B) {
	secret := []byte("bench-app-secret-0123456789")
	a, err := liveperson.New(config.LivePersonPlatform{AccountID: "12345678", ClientID: "bench-app", ClientSecret: config.Secret{Value: string(secret)}}, liveperson.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"ms.MessagingEventNotification.ContentEvent.consumer-text", "cqm.ExConversationChangeNotification.consumer-created"} {
		b.Run(name, func(b *testing.B) {
			body, err := os.ReadFile("testdata/" + name + ".json")
			if err != nil {
				b.Skip(err)
			}
			h := http.Header{}
			h.Set(liveperson.HeaderAccountID, "12345678")
			h.Set(liveperson.HeaderClientID, "bench-app")
			h.Set(liveperson.HeaderSignature, liveperson.Sign(secret, body, "sha1", false))
			req := bridge.WebhookRequest{Header: h, Body: body}
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				evs, err := a.ParseWebhook(ctx, req)
				if err != nil || len(evs) != 1 {
					b.Fatal(len(evs), err)
				}
			}
		})
	}
}
