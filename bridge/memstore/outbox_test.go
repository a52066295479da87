package memstore_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/memstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/storetest"
)

// The memory store's outbox within one process behaves as the Redis one:
// retries wait for their time, leases run out and are handed out again, a
// stale delivery (its lease ran out) cannot retry or bury what another
// worker holds now, and the check before each attempt (Renew) refuses it.

const lease = time.Minute

type outboxFix struct {
	t     *testing.T
	ctx   context.Context
	clock *storetest.Clock
	s     *memstore.Store
	key   bridge.Key
}

func newOutboxFix(t *testing.T) *outboxFix {
	clock := storetest.NewClock()
	return &outboxFix{t: t, ctx: context.Background(), clock: clock, key: bridge.Key{Brand: "acme", Conversation: "c-1"},
		s: memstore.New(memstore.Options{Clock: clock, ClaimTimeout: lease})}
}

// enqueue writes entries the way the service does: with a state change.
func (f *outboxFix) enqueue(ids ...string) {
	f.t.Helper()
	var entries []bridge.OutboxEntry
	for _, id := range ids {
		entries = append(entries, bridge.OutboxEntry{ID: id, Effect: bridge.EffectPostMessage, Key: f.key, Platform: "standard", Text: "link", CreatedAt: f.clock.Now()})
	}
	obs := bridge.Observation{Key: f.key, Platform: "standard", Consumer: "u-1", At: f.clock.Now()}
	_, err := f.s.IssueTicket(f.ctx, bridge.IssueTicket{Obs: &obs, Key: f.key, TicketHash: bridge.NewToken(f.key).Hash(), Now: f.clock.Now(), ExpiresAt: f.clock.Now().Add(10 * time.Minute), Outbox: entries})
	require.NoError(f.t, err)
}

func (f *outboxFix) claim(worker string) []bridge.Delivery {
	f.t.Helper()
	ds, err := f.s.Claim(f.ctx, worker, 10, 0)
	require.NoError(f.t, err)
	return ds
}

func (f *outboxFix) renew(d bridge.Delivery) bool {
	f.t.Helper()
	ok, err := f.s.Renew(f.ctx, d)
	require.NoError(f.t, err)
	return ok
}

func (f *outboxFix) stats() memstore.OutboxStats {
	f.t.Helper()
	st, err := f.s.OutboxStats(f.ctx)
	require.NoError(f.t, err)
	return st
}

var _ bridge.Renewer = (*memstore.Store)(nil)

func TestOutboxRetryWaitsForItsTime(t *testing.T) {
	f := newOutboxFix(t)
	f.enqueue("e1")
	ds := f.claim("w1")
	require.Len(t, ds, 1)
	assert.Equal(t, 1, ds[0].Attempt)
	assert.Equal(t, memstore.OutboxStats{Ready: 1, InFlight: 1}, f.stats())

	require.NoError(t, f.s.Retry(f.ctx, ds[0], f.clock.Now().Add(30*time.Second), "503"))
	assert.Empty(t, f.claim("w1"), "not due yet")
	st := f.stats()
	assert.Equal(t, int64(1), st.Delayed)
	assert.Equal(t, int64(0), st.Ready)

	f.clock.Advance(30 * time.Second)
	again := f.claim("w2")
	require.Len(t, again, 1)
	assert.Equal(t, 2, again[0].Attempt, "attempts are counted across retries")
	require.NoError(t, f.s.Ack(f.ctx, again[0]))
	assert.Equal(t, memstore.OutboxStats{}, f.stats())
	f.clock.Advance(time.Hour)
	assert.Empty(t, f.claim("w1"), "an acked entry is never handed out again")
}

func TestOutboxBuryKeepsADeadLetter(t *testing.T) {
	f := newOutboxFix(t)
	f.enqueue("e1")
	ds := f.claim("w1")
	require.Len(t, ds, 1)
	require.NoError(t, f.s.Bury(f.ctx, ds[0], "status 400"))
	f.clock.Advance(time.Hour)
	assert.Empty(t, f.claim("w1"))
	dls := f.s.DeadLetters()
	require.Len(t, dls, 1)
	assert.Equal(t, "e1", dls[0].Entry.ID)
	assert.Equal(t, 1, dls[0].Attempts)
	assert.Equal(t, "status 400", dls[0].Reason)
	assert.Equal(t, int64(1), f.stats().Dead)
	assert.False(t, f.renew(ds[0]), "a buried entry is not attempted")
}

func TestOutboxLeaseExpiryAndStaleDeliveries(t *testing.T) {
	f := newOutboxFix(t)
	f.enqueue("e1")
	old := f.claim("w1")
	require.Len(t, old, 1)
	assert.Empty(t, f.claim("w2"), "leased")

	// w1 stalls past its lease: the entry goes to w2.
	f.clock.Advance(lease + time.Second)
	cur := f.claim("w2")
	require.Len(t, cur, 1)
	assert.Equal(t, 2, cur[0].Attempt)

	// w1 wakes up: its check before the attempt refuses, and its retry or
	// burial of what w2 holds changes nothing.
	assert.False(t, f.renew(old[0]))
	require.NoError(t, f.s.Retry(f.ctx, old[0], f.clock.Now(), "timeout"))
	require.NoError(t, f.s.Bury(f.ctx, old[0], "timeout"))
	assert.Empty(t, f.claim("w3"), "still w2's")
	assert.Empty(t, f.s.DeadLetters())
	assert.True(t, f.renew(cur[0]))

	// w1's attempt had in fact succeeded: its Ack completes the entry
	// whoever holds it, and w2's check before its attempt refuses.
	require.NoError(t, f.s.Ack(f.ctx, old[0]))
	assert.False(t, f.renew(cur[0]))
	f.clock.Advance(2 * lease)
	assert.Empty(t, f.claim("w3"))
}

func TestOutboxRenewRestartsTheLease(t *testing.T) {
	f := newOutboxFix(t)
	f.enqueue("e1", "e2")
	ds := f.claim("w1")
	require.Len(t, ds, 2)
	// The second entry waits behind a slow first call…
	f.clock.Advance(lease - time.Second)
	// …and is renewed just before its own attempt.
	require.True(t, f.renew(ds[1]))
	f.clock.Advance(2 * time.Second)
	again := f.claim("w2")
	require.Len(t, again, 1, "only the entry not renewed is handed out again")
	assert.Equal(t, ds[0].Entry.ID, again[0].Entry.ID)
	assert.False(t, f.renew(ds[0]))
	assert.True(t, f.renew(ds[1]))
}

func TestOutboxStatsOldestAge(t *testing.T) {
	f := newOutboxFix(t)
	f.enqueue("e1")
	f.clock.Advance(90 * time.Second)
	f.enqueue("e2")
	st := f.stats()
	assert.Equal(t, int64(2), st.Ready)
	assert.Equal(t, 90*time.Second, st.OldestAge)
}

func TestOutboxDeadLettersAreBounded(t *testing.T) {
	f := newOutboxFix(t)
	for i := range memstore.MaxDeadLetters + 2 {
		f.clock.Advance(time.Millisecond)
		f.enqueue("e" + strconv.Itoa(i))
		ds := f.claim("w1")
		require.Len(t, ds, 1)
		require.NoError(t, f.s.Bury(f.ctx, ds[0], "400"))
	}
	dls := f.s.DeadLetters()
	require.Len(t, dls, memstore.MaxDeadLetters)
	assert.Equal(t, "e2", dls[0].Entry.ID, "the oldest went first")
}
