package bridge_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/memstore"
)

// stampingStore is a memory store that says when it handed a delivery out
// (as the Redis store does), backdated by age, and counts the checks
// before attempts.
type stampingStore struct {
	*memstore.Store
	age    time.Duration
	renews atomic.Int32
}

func (s *stampingStore) Claim(ctx context.Context, worker string, max int, wait time.Duration) ([]bridge.Delivery, error) {
	ds, err := s.Store.Claim(ctx, worker, max, wait)
	for i := range ds {
		ds[i].ClaimedAt = time.Now().Add(-s.age)
	}
	return ds, err
}

func (s *stampingStore) Renew(ctx context.Context, d bridge.Delivery) (bool, error) {
	s.renews.Add(1)
	return s.Store.Renew(ctx, d)
}

type safeCountingPlatform struct {
	eventsPlatform
	calls atomic.Int32
}

func (p *safeCountingPlatform) Deliver(context.Context, bridge.OutboxEntry) error {
	p.calls.Add(1)
	return nil
}

// TestFreshClaimsSkipTheCheckBeforeTheAttempt: a delivery claimed moments
// ago is attempted without Renew; one that waited a quarter of its lease or
// more is checked first.
func TestFreshClaimsSkipTheCheckBeforeTheAttempt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		age    time.Duration
		renews int32
	}{
		{"fresh", 0, 0},
		{"waited", 20 * time.Second, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &stampingStore{Store: memstore.New(memstore.Options{}), age: tc.age}
			plat := &safeCountingPlatform{}
			svc, err := bridge.NewService(bridge.Options{Store: st, Brands: []*bridge.Brand{{ID: "acme", Platforms: map[string]bridge.Platform{"standard": plat}}}})
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			key := bridge.Key{Brand: "acme", Conversation: "c1"}
			var entries []bridge.OutboxEntry
			for _, e := range []bridge.Effect{bridge.EffectAttachIdentity, bridge.EffectNotifyAgents, bridge.EffectPostMessage} {
				entries = append(entries, bridge.OutboxEntry{ID: bridge.RandomString(12), Effect: e, Key: key, Platform: "standard", Text: "hi", CreatedAt: time.Now()})
			}
			obs := bridge.Observation{Key: key, Platform: "standard", Consumer: "u", At: time.Now()}
			_, err = st.IssueTicket(ctx, bridge.IssueTicket{Obs: &obs, Key: key, TicketHash: bridge.NewToken(key).Hash(), Now: time.Now(), ExpiresAt: time.Now().Add(time.Minute), Outbox: entries})
			require.NoError(t, err)

			done := make(chan struct{})
			go func() {
				defer close(done)
				svc.RunWorkers(ctx, bridge.DeliveryPolicy{Workers: 1, MaxAttempts: 3, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, CallTimeout: time.Second, Lease: time.Minute}, "w")
			}()
			require.Eventually(t, func() bool { return plat.calls.Load() == 3 }, 5*time.Second, 5*time.Millisecond)
			cancel()
			<-done
			assert.Equal(t, tc.renews, st.renews.Load(), "checks before attempts")
		})
	}
}
