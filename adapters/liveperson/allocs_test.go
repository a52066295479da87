//go:build !race

package liveperson_test

import "testing"

// An allocation budget for the adapter's work per notification (14 and 13
// on Go 1.26 for the two samples; the signature check allocates nothing,
// see TestVerifyAllocations), so that a change putting avoidable allocations
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
		if allocs > 16 {
			t.Errorf("%s: %.1f allocations per notification, budget 16", name, allocs)
		}
	}
}
