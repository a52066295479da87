package bridge

import (
	"testing"
	"time"
)

func TestClaimBatchFitsTheLease(t *testing.T) {
	for _, tc := range []struct {
		lease, call time.Duration
		want        int
	}{
		{60 * time.Second, 10 * time.Second, 5}, // the defaults
		{3 * time.Second, time.Second, 2},
		{1500 * time.Millisecond, time.Second, 1},
		{time.Hour, time.Second, maxClaim},
		{0, 10 * time.Second, maxClaim},
	} {
		p := DeliveryPolicy{Lease: tc.lease, CallTimeout: tc.call}
		if got := p.claimBatch(); got != tc.want {
			t.Errorf("lease %s, call timeout %s: batch %d, want %d", tc.lease, tc.call, got, tc.want)
		}
		if tc.lease > 0 && time.Duration(p.claimBatch())*tc.call >= tc.lease && p.claimBatch() > 1 {
			t.Errorf("lease %s: a batch of timeouts outlives the lease", tc.lease)
		}
	}
}

// The default policy (config/defaults.go: 110 attempts, backoff 1s to 1h)
// keeps retrying for about three days, LivePerson's retry horizon.
func TestDefaultRetryHorizon(t *testing.T) {
	p := DeliveryPolicy{MaxAttempts: 110, MinBackoff: time.Second, MaxBackoff: time.Hour}
	var lo, hi time.Duration
	for n := 1; n < p.MaxAttempts; n++ {
		d := p.MinBackoff << min(n-1, 20)
		d = min(d, p.MaxBackoff)
		lo += d / 2
		hi += d
		for range 20 {
			if w := p.Backoff(n); w < d/2 || w > d {
				t.Fatalf("Backoff(%d) = %s, want within [%s, %s]", n, w, d/2, d)
			}
		}
	}
	if lo < 48*time.Hour || hi > 100*time.Hour {
		t.Errorf("retry horizon %s to %s, want about three days", lo, hi)
	}
	t.Logf("retry horizon %s to %s", lo.Round(time.Hour), hi.Round(time.Hour))
}

func TestFreshClaimSkipsOnlyRecentClaims(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p := DeliveryPolicy{Lease: time.Minute}
	for _, tc := range []struct {
		name    string
		p       DeliveryPolicy
		claimed time.Time
		now     time.Time
		want    bool
	}{
		{"just claimed", p, at, at.Add(time.Millisecond), true},
		{"under a quarter of the lease", p, at, at.Add(14 * time.Second), true},
		{"a quarter of the lease", p, at, at.Add(15 * time.Second), false},
		{"lease over", p, at, at.Add(2 * time.Minute), false},
		{"store does not say", p, time.Time{}, at, false},
		{"lease unknown", DeliveryPolicy{}, at, at, false},
		{"clock went back", p, at, at.Add(-time.Second), false},
	} {
		if got := tc.p.freshClaim(Delivery{ClaimedAt: tc.claimed}, tc.now); got != tc.want {
			t.Errorf("%s: freshClaim = %v, want %v", tc.name, got, tc.want)
		}
	}
}
