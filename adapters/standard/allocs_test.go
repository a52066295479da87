//go:build !race

package standard

import "testing"

// An allocation budget for the adapter's work per webhook (15 on Go 1.26:
// the decoded strings and pointers, the MAC sums, the event), so that a
// change putting avoidable allocations back on the hottest path (encoding/json
// instead of inbound.Unmarshal, hmac.New per request) fails here rather than
// in a benchmark nobody reruns. Counts, not times; not under -race, which
// drops sync.Pool items on purpose.
func TestParseWebhookAllocations(t *testing.T) {
	a, req := benchWebhook(t)
	allocs := testing.AllocsPerRun(200, func() {
		if evs, err := a.ParseWebhook(t.Context(), req); err != nil || len(evs) != 1 {
			t.Fatal(err)
		}
	})
	if allocs > 17 {
		t.Errorf("ParseWebhook: %.1f allocations per webhook, budget 17", allocs)
	}
}
