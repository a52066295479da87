package redisstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore/redistest"
)

// TestTwoReplicas: two services (as two bridge replicas) share one Redis
// store. The conversation is seen by A, the link is issued by B, the login
// starts on A and comes back on B, and the confirm code arrives at A and,
// as a platform retry, at B at the same time. The conversation steps up
// exactly once and each outbox effect is delivered exactly once by the two
// replicas' workers together.
func TestTwoReplicas(t *testing.T) {
	eachTarget(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		prefix := redistest.Prefix(t, c)
		// Each replica has its own Store object (its own wake-up channel and
		// claim rotation), as separate processes would; they share the prefix.
		opts := redisstore.Options{Prefix: prefix, ClaimTimeout: 10 * time.Second, PollInterval: 50 * time.Millisecond}
		p, idp := newFakePlatform(), newFakeIdP()
		a := newReplica(t, redistest.Store(t, c, opts), p, idp)
		b := newReplica(t, redistest.Store(t, c, opts), p, idp)

		workCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for name, r := range map[string]*replica{"A": a, "B": b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.svc.RunWorkers(workCtx, bridge.DeliveryPolicy{Workers: 3, MaxAttempts: 3, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, CallTimeout: time.Second}, name)
			}()
		}
		t.Cleanup(func() { stop(); wg.Wait() })

		conv := fmt.Sprintf("conv-%d", time.Now().UnixNano())
		_, err := a.webhook(ctx, fakeEvent{ID: "ev-start", Kind: string(bridge.EventConversationStarted), Conversation: conv, Consumer: "anon-7", Channel: "web"})
		require.NoError(t, err)
		link, err := b.svc.RequestLink(ctx, brandID, conv, true)
		require.NoError(t, err)
		code := login(t, ctx, link, a, b, idp)

		st, err := a.svc.Status(ctx, brandID, conv)
		require.NoError(t, err)
		assert.Equal(t, bridge.StateLoginVerified, st.State)

		// The code message: once to A and, concurrently, the platform's retry
		// of the same event to B; then the consumer types it again (a new
		// event) on both.
		msg := fakeEvent{ID: "ev-code", Kind: string(bridge.EventConsumerMessage), Conversation: conv, Consumer: "anon-7", Channel: "web", Text: code[:3] + " " + code[3:]}
		var mu sync.Mutex
		results := map[string]int{}
		var hw sync.WaitGroup
		for i, r := range []*replica{a, b, a, b, a, b} {
			hw.Add(1)
			go func() {
				defer hw.Done()
				m := msg
				if i >= 2 {
					m.ID = fmt.Sprintf("ev-code-again-%d", i)
				}
				res, err := r.webhook(ctx, m)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					results["error: "+err.Error()]++
				case res.Duplicates == 1:
					results["duplicate"]++
				default:
					results["applied"]++
				}
			}()
		}
		hw.Wait()
		assert.Equal(t, map[string]int{"applied": 5, "duplicate": 1}, results)
		assert.Equal(t, 1, a.rec.steppedUp+b.rec.steppedUp, "stepped up exactly once across replicas")
		matched := a.rec.codes[bridge.CodeMatched] + b.rec.codes[bridge.CodeMatched]
		assert.Equal(t, 1, matched)

		for _, r := range []*replica{a, b} {
			st, err := r.svc.Status(ctx, brandID, conv)
			require.NoError(t, err)
			assert.Equal(t, bridge.StateSteppedUp, st.State)
			require.NotNil(t, st.Identity)
			assert.Equal(t, testIdentity().Subject, st.Identity.Subject)
		}

		// The link message plus the four step-up effects, each exactly once.
		const want = 5
		waitFor(t, 10*time.Second, "5 deliveries", func() bool { d, _, _ := p.snapshot(); return len(d) >= want })
		// Give both replicas' workers time to (wrongly) deliver anything twice.
		time.Sleep(500 * time.Millisecond)
		deliveries, effects, problems := p.snapshot()
		assert.Empty(t, problems)
		assert.Len(t, deliveries, want)
		for id, n := range deliveries {
			assert.Equal(t, 1, n, "entry %s delivered %d times", id, n)
		}
		assert.ElementsMatch(t, []bridge.Effect{bridge.EffectPostMessage, bridge.EffectAttachIdentity, bridge.EffectNotifyAgents, bridge.EffectPostMessage, bridge.EffectRouteSkill}, effects)
	})
}
