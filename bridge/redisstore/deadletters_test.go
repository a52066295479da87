package redisstore_test

import (
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

// TestDeadLetters: buried entries of several partitions (several Cluster
// nodes) are listed oldest first, replayed with a fresh attempt count, or
// dropped; the outbox counters follow.
func TestDeadLetters(t *testing.T) {
	eachTarget(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		clock := &stepClock{now: time.Now()}
		s := redistest.Store(t, c, redisstore.Options{Clock: clock})

		// Entries in distinct partitions.
		var keys []bridge.Key
		seen := map[uint16]bool{}
		for len(keys) < 4 {
			k := newKey()
			if !seen[k.Partition()] {
				seen[k.Partition()] = true
				keys = append(keys, k)
			}
		}
		ids := map[string]bool{}
		for _, k := range keys {
			o := obsOf(k)
			e := entryOf(k, bridge.EffectNotifyAgents)
			ids[e.ID] = true
			_, err := s.IssueTicket(ctx, bridge.IssueTicket{Obs: &o, Key: k, TicketHash: bridge.NewToken(k).Hash(), Now: time.Now(), ExpiresAt: time.Now().Add(time.Minute), Outbox: []bridge.OutboxEntry{e}})
			require.NoError(t, err)
		}
		st, err := s.OutboxStats(ctx)
		require.NoError(t, err)
		assert.Equal(t, redisstore.OutboxStats{Ready: 4, OldestAge: st.OldestAge}, st)

		ds, err := s.Claim(ctx, "w", 10, 0)
		require.NoError(t, err)
		require.Len(t, ds, 4)
		st, err = s.OutboxStats(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(4), st.InFlight)
		require.NoError(t, s.Retry(ctx, ds[3], clock.Now().Add(time.Hour), "503"))
		for i, d := range ds[:3] {
			clock.advance(time.Second) // burial order = list order
			require.NoError(t, s.Bury(ctx, d, "400 bad request"), i)
		}
		st, err = s.OutboxStats(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(0), st.Ready)
		assert.Equal(t, int64(1), st.Delayed)
		assert.Equal(t, int64(3), st.Dead)

		dls, err := s.DeadLetters(ctx, 0)
		require.NoError(t, err)
		require.Len(t, dls, 3)
		for i, dl := range dls {
			assert.Equal(t, ds[i].Entry.ID, dl.Entry.ID, "oldest first")
			assert.Equal(t, "400 bad request", dl.Reason)
			assert.Equal(t, 1, dl.Attempts)
		}
		limited, err := s.DeadLetters(ctx, 2)
		require.NoError(t, err)
		assert.Len(t, limited, 2)

		require.NoError(t, s.Replay(ctx, dls[0].ID))
		require.NoError(t, s.Drop(ctx, dls[1].ID))
		for _, id := range []string{dls[0].ID, dls[1].ID, "99:1-0", "x", "1:nope", "", "-1:1-0"} {
			assert.ErrorIs(t, s.Replay(ctx, id), bridge.ErrNotFound, id)
			assert.ErrorIs(t, s.Drop(ctx, id), bridge.ErrNotFound, id)
		}
		again, err := s.Claim(ctx, "w", 10, 0)
		require.NoError(t, err)
		require.Len(t, again, 1)
		assert.Equal(t, ds[0].Entry.ID, again[0].Entry.ID)
		assert.Equal(t, 1, again[0].Attempt, "a replay starts the attempts over")
		require.NoError(t, s.Ack(ctx, again[0]))

		rest, err := s.DeadLetters(ctx, 0)
		require.NoError(t, err)
		require.Len(t, rest, 1)
		assert.Equal(t, ds[2].Entry.ID, rest[0].Entry.ID)
	})
}

// stepClock is a settable clock for the outbox's due times.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
