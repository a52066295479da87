package redisstore_test

import (
	"context"
	"fmt"
	"strings"
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

// TestEveryKeyExpires runs full flows (a step-up with its deliveries, a
// closed conversation, a retried and a buried delivery) and then checks
// every key under the prefix: each has a TTL, except the outbox streams and
// retry sets, which are bounded otherwise: entries leave the stream when
// settled (acked entries are deleted, retries move to the retry set, dead
// letters to the capped dead-letter stream, which has a TTL), and a retry
// set holds only retries not yet due (Redis deletes it when empty).
func TestEveryKeyExpires(t *testing.T) {
	eachTarget(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		prefix := redistest.Prefix(t, c)
		s := redistest.Store(t, c, redisstore.Options{Prefix: prefix, PollInterval: 50 * time.Millisecond})
		p, idp := newFakePlatform(), newFakeIdP()
		r := newReplica(t, s, p, idp)
		workCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.svc.RunWorkers(workCtx, bridge.DeliveryPolicy{Workers: 2, MaxAttempts: 3, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, CallTimeout: time.Second}, "w")
		}()

		conv := fmt.Sprintf("conv-%d", time.Now().UnixNano())
		ev := func(id, kind, text string) {
			_, err := r.webhook(ctx, fakeEvent{ID: id, Kind: kind, Conversation: conv, Consumer: "anon-1", Channel: "web", Text: text})
			require.NoError(t, err)
		}
		ev("e1", string(bridge.EventConversationStarted), "")
		link, err := r.svc.RequestLink(ctx, brandID, conv, true)
		require.NoError(t, err)
		// An older link that is replaced, and a login left half-way.
		_, err = r.svc.RequestLink(ctx, brandID, conv, false)
		require.NoError(t, err)
		link, err = r.svc.RequestLink(ctx, brandID, conv, false)
		require.NoError(t, err)
		code := login(t, ctx, link, r, r, idp)
		ev("e2", string(bridge.EventConsumerMessage), code)
		waitFor(t, 10*time.Second, "the step-up's deliveries", func() bool { d, _, _ := p.snapshot(); return len(d) == 5 })
		ev("e3", string(bridge.EventConversationClosed), "")
		stop()
		wg.Wait()

		// A delivery retried later and one buried, on another conversation.
		k := newKey()
		o := obsOf(k)
		_, err = s.IssueTicket(ctx, bridge.IssueTicket{Obs: &o, Key: k, TicketHash: bridge.NewToken(k).Hash(), Now: time.Now(), ExpiresAt: time.Now().Add(time.Minute),
			Outbox: []bridge.OutboxEntry{entryOf(k, bridge.EffectPostMessage), entryOf(k, bridge.EffectPostMessage)}})
		require.NoError(t, err)
		ds, err := s.Claim(ctx, "w", 10, 0)
		require.NoError(t, err)
		require.Len(t, ds, 2)
		require.NoError(t, s.Retry(ctx, ds[0], time.Now().Add(time.Hour), "503"))
		require.NoError(t, s.Bury(ctx, ds[1], "400"))

		keys, err := redistest.Keys(ctx, c, prefix)
		require.NoError(t, err)
		kinds := map[string]int{}
		for _, key := range keys {
			kind := keyKind(key)
			kinds[kind]++
			pttl, err := c.PTTL(ctx, key).Result()
			require.NoError(t, err)
			switch kind {
			case "outbox":
				assert.Equal(t, time.Duration(-1), pttl, key)
				n, err := c.XLen(ctx, key).Result()
				require.NoError(t, err)
				assert.Zero(t, n, "%s: settled entries leave the stream", key)
				cs, err := c.XInfoConsumers(ctx, key, redisstore.Group).Result()
				require.NoError(t, err)
				assert.LessOrEqual(t, len(cs), 3, "%s: consumers are the live workers only", key)
			case "outbox:delayed":
				assert.Equal(t, time.Duration(-1), pttl, key)
				n, err := c.ZCard(ctx, key).Result()
				require.NoError(t, err)
				assert.Equal(t, int64(1), n, "%s: only the retry not yet due", key)
			default:
				assert.Greater(t, pttl, time.Duration(0), "%s (%s) must expire", key, kind)
			}
		}
		t.Logf("keys after the flows, by kind: %v", kinds)
		for _, want := range []string{"s", "e", "tk", "outbox", "outbox:delayed", "outbox:dead"} {
			assert.Positive(t, kinds[want], "the flows leave a %q key (else this test checks nothing)", want)
		}
	})
}

// keyKind is the part of a key after "<prefix>:{pN}:" up to the
// conversation or hash: s, e, tk, tx, lg, outbox, outbox:delayed, ...
func keyKind(key string) string {
	_, rest, ok := strings.Cut(key, "}:")
	if !ok {
		return "?"
	}
	if strings.HasPrefix(rest, "outbox") {
		return rest
	}
	kind, _, _ := strings.Cut(rest, ":")
	return kind
}
