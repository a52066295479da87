//go:build !race

package standard

import (
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// An allocation budget for the adapter's work per webhook (15 on Go 1.26:
// the decoded strings and pointers, the MAC sums, the event), so that a
// change putting avoidable allocations back on the hottest path (encoding/json
// instead of inbound.Unmarshal, hmac.New per request) fails here rather than
// in a benchmark nobody reruns. Counts, not times; not under -race, which
// drops sync.Pool items on purpose.
func TestParseWebhookAllocations(t *testing.T) {
	secret, key := benchSecret(t)
	now := time.Now()
	a, err := New(config.StandardPlatform{WebhookSecrets: []config.Secret{{Value: secret}}}, Options{Clock: benchClock{now}})
	if err != nil {
		t.Fatal(err)
	}
	req := bridge.WebhookRequest{Header: benchHeader(key, now), Body: benchBody, URL: "http://127.0.0.1/webhooks/acme/standard", Received: now}
	allocs := testing.AllocsPerRun(200, func() {
		if evs, err := a.ParseWebhook(t.Context(), req); err != nil || len(evs) != 1 {
			t.Fatal(err)
		}
	})
	if allocs > 17 {
		t.Errorf("ParseWebhook: %.1f allocations per webhook, budget 17", allocs)
	}
}
