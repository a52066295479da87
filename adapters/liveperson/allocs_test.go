//go:build !race

package liveperson_test

import (
	"net/http"
	"os"
	"testing"

	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// An allocation budget for the adapter's work per notification (21 on Go
// 1.26 for either sample), so that a change putting avoidable allocations
// back on the hot path (encoding/json instead of inbound.Unmarshal, the
// three-pass parse instead of the one-pass one) fails here. Counts, not
// times; not under -race.
func TestParseWebhookAllocations(t *testing.T) {
	secret := []byte("bench-app-secret-0123456789")
	a, err := liveperson.New(config.LivePersonPlatform{AccountID: "12345678", ClientID: "bench-app", ClientSecret: config.Secret{Value: string(secret)}}, liveperson.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ms.MessagingEventNotification.ContentEvent.consumer-text", "cqm.ExConversationChangeNotification.consumer-created"} {
		body, err := os.ReadFile("testdata/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set(liveperson.HeaderAccountID, "12345678")
		h.Set(liveperson.HeaderClientID, "bench-app")
		h.Set(liveperson.HeaderSignature, liveperson.Sign(secret, body, "sha1", false))
		req := bridge.WebhookRequest{Header: h, Body: body}
		allocs := testing.AllocsPerRun(200, func() {
			if evs, err := a.ParseWebhook(t.Context(), req); err != nil || len(evs) != 1 {
				t.Fatal(len(evs), err)
			}
		})
		if allocs > 23 {
			t.Errorf("%s: %.1f allocations per notification, budget 23", name, allocs)
		}
	}
}
