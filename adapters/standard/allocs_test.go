//go:build !race

package standard

import (
	"testing"
	"time"
)

// An allocation budget for the adapter's work per webhook (9 on Go 1.26:
// the decoded strings and pointers, the event), so that a
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
	if allocs > 11 {
		t.Errorf("ParseWebhook: %.1f allocations per webhook, budget 11", allocs)
	}
}

// The signature check with the adapter's pooled keys allocates nothing,
// during a rotation too.
func TestVerifyAllocations(t *testing.T) {
	_, key := benchSecret(t)
	_, other := benchSecret(t)
	now := time.Now()
	h := benchHeader(key, now)
	keys := newKeyring([][]byte{other, key})
	check := func() {
		if _, err := verify(keys, h, benchBody, now, 0); err != nil {
			t.Fatal(err)
		}
	}
	check()
	if n := testing.AllocsPerRun(100, check); n != 0 {
		t.Errorf("verify: %.1f allocations per webhook, want 0", n)
	}
}
