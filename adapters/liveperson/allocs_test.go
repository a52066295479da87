//go:build !race

package liveperson_test

import "testing"

// An allocation budget for the adapter's work per notification (21 on Go
// 1.26 for either sample), so that a change putting avoidable allocations
// back on the hot path (encoding/json instead of inbound.Unmarshal, the
// three-pass parse instead of the one-pass one) fails here. Counts, not
// times; not under -race.
func TestParseWebhookAllocations(t *testing.T) {
	a, request := sampleWebhooks(t)
	for _, name := range webhookSamples {
		req := request(name)
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
