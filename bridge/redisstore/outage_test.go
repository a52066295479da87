package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore/redistest"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// TestOutage stops a private redis-server under a store, checks every kind
// of call fails with bridge.ErrUnavailable (which the HTTP layer answers
// with 503, so platforms retry) and nothing else, then starts the server
// again on the same port and checks the same store, with the same client,
// recovers by itself.
func TestOutage(t *testing.T) {
	tests := []struct {
		name     string
		down, up func(*redistest.Server)
		// A frozen server accepts connections and never answers: each call
		// waits for the client's read timeout, so only a few are tried.
		calls int
		// budget bounds one failing call: connection refused is immediate,
		// a frozen server costs the read timeout (2s by default).
		budget time.Duration
	}{
		{"shutdown", (*redistest.Server).Stop, (*redistest.Server).Restart, 0, time.Second},
		{"crash", (*redistest.Server).Kill, (*redistest.Server).Restart, 0, time.Second},
		{"frozen", (*redistest.Server).Pause, (*redistest.Server).Resume, 2, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.StartServer(t) // skips under -short
			c := redistest.Client(t, srv.Addr)
			s := redistest.Store(t, c, redisstore.Options{Prefix: "stepup"})
			ctx := t.Context()
			k := newKey()
			err := s.Observe(ctx, "ev-1", obsOf(k))
			require.NoError(t, err)

			tt.down(srv)

			calls := []struct {
				name string
				fn   func(ctx context.Context) error
			}{
				{"ping", s.Ping},
				{"observe", func(ctx context.Context) error { err := s.Observe(ctx, "ev-2", obsOf(k)); return err }},
				{"get", func(ctx context.Context) error { _, err := s.Get(ctx, k); return err }},
				{"issue ticket", func(ctx context.Context) error {
					_, err := s.IssueTicket(ctx, bridge.IssueTicket{Key: k, TicketHash: "h", Now: time.Now(), ExpiresAt: time.Now().Add(time.Minute)})
					return err
				}},
				{"peek ticket", func(ctx context.Context) error {
					_, err := s.PeekTicket(ctx, k.Brand, k.Partition(), "h", time.Now())
					return err
				}},
				{"take login", func(ctx context.Context) error {
					_, err := s.TakeLogin(ctx, k.Brand, k.Partition(), "h", time.Now())
					return err
				}},
				{"confirm code", func(ctx context.Context) error {
					_, _, err := s.ConfirmCode(ctx, bridge.ConfirmCode{EventID: "m", Obs: obsOf(k), CodeHash: "x", MaxAttempts: 3})
					return err
				}},
				{"claim", func(ctx context.Context) error { _, err := s.Claim(ctx, "w", 10, 0); return err }},
				{"ack", func(ctx context.Context) error { return s.Ack(ctx, bridge.Delivery{Handle: "1:1-0:1"}) }},
			}
			if tt.calls > 0 {
				calls = calls[:tt.calls]
			}
			for _, call := range calls {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				start := time.Now()
				err := call.fn(cctx)
				cancel()
				require.Error(t, err, call.name)
				assert.ErrorIs(t, err, bridge.ErrUnavailable, "%s: %v", call.name, err)
				for _, other := range []error{bridge.ErrNotFound, bridge.ErrDuplicate, bridge.ErrTicketInvalid, bridge.ErrLoginInvalid, bridge.ErrClosed} {
					assert.False(t, errors.Is(err, other), "%s: %v must not also be %v", call.name, err, other)
				}
				// A webhook is answered 503 well within a platform's timeout.
				assert.Less(t, time.Since(start), tt.budget, call.name)
			}

			tt.up(srv)

			// The same store recovers without a new client. A restarted server
			// is empty (no persistence) and has no scripts cached.
			waitFor(t, 10*time.Second, "store to answer again", func() bool { return s.Ping(ctx) == nil })
			err = s.Observe(ctx, "ev-3", obsOf(k))
			require.NoError(t, err)
			o := obsOf(k)
			_, err = s.IssueTicket(ctx, bridge.IssueTicket{Obs: &o, Key: k, TicketHash: bridge.NewToken(k).Hash(), Now: time.Now(), ExpiresAt: time.Now().Add(time.Minute), Outbox: []bridge.OutboxEntry{entryOf(k, bridge.EffectPostMessage)}})
			require.NoError(t, err)
			ds, err := s.Claim(ctx, "w", 10, 0)
			require.NoError(t, err)
			require.Len(t, ds, 1)
			require.NoError(t, s.Ack(ctx, ds[0]))
		})
	}
}

// TestSentinelFailover: the master dies, the Sentinel promotes its replica,
// and the same store (same client) carries on against the new master with
// the state written before (acknowledged by the replica). Until the switch
// calls fail with bridge.ErrUnavailable.
func TestSentinelFailover(t *testing.T) {
	master := redistest.StartServer(t) // skips under -short
	replica := redistest.StartReplica(t, master)
	sentinel := redistest.StartSentinel(t, master, "stepup-master")
	c := redistest.ClientFor(t, config.Redis{Addrs: []string{sentinel.Addr}, MasterName: "stepup-master"})
	s := redistest.Store(t, c, redisstore.Options{Prefix: "stepup"})
	ctx := t.Context()
	k := newKey()
	err := s.Observe(ctx, "ev-1", obsOf(k))
	require.NoError(t, err)
	// The write is on the replica before the master goes (asynchronous
	// replication can lose the last writes of a crashed master: see the
	// report on WAIT).
	require.NoError(t, c.Do(ctx, "WAIT", 1, 2000).Err())

	master.Kill()
	var unavailable int
	waitFor(t, 30*time.Second, "failover to the replica", func() bool {
		err := s.Observe(ctx, "", obsOf(k))
		if err != nil {
			require.ErrorIs(t, err, bridge.ErrUnavailable)
			unavailable++
		}
		return err == nil
	})
	t.Logf("failover: %d calls refused as unavailable before the switch", unavailable)
	sess, err := s.Get(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, bridge.StateAnonymous, sess.State)
	err = s.Observe(ctx, "ev-1", obsOf(k))
	require.ErrorIs(t, err, bridge.ErrDuplicate, "the dedupe set survived the failover")
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr})
	defer rc.Close()
	role, err := rc.Do(ctx, "ROLE").Slice()
	require.NoError(t, err)
	assert.Equal(t, "master", role[0])
}

// TestMinReplicas: a master configured with min-replicas-to-write refuses
// writes while no replica keeps up; the store reports that as
// bridge.ErrUnavailable (503, the platform retries) and carries on once a
// replica is attached. This is how an operator narrows what a master crash
// can lose (see the README's guarantees).
func TestMinReplicas(t *testing.T) {
	master := redistest.StartServerWith(t, "--min-replicas-to-write", "1", "--min-replicas-max-lag", "10")
	c := redistest.Client(t, master.Addr)
	s := redistest.Store(t, c, redisstore.Options{Prefix: "stepup"})
	ctx := t.Context()
	k := newKey()
	err := s.Observe(ctx, "ev-1", obsOf(k))
	require.ErrorIs(t, err, bridge.ErrUnavailable)
	_, err = s.Get(ctx, k)
	require.ErrorIs(t, err, bridge.ErrNotFound, "nothing was written")

	redistest.StartReplica(t, master)
	waitFor(t, 10*time.Second, "the master to accept writes", func() bool {
		err := s.Observe(ctx, "ev-1", obsOf(k))
		return err == nil
	})
	err = s.Observe(ctx, "ev-1", obsOf(k))
	require.ErrorIs(t, err, bridge.ErrDuplicate)
}
