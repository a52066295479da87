package redisstore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore/redistest"
)

func newKey() bridge.Key {
	return bridge.Key{Brand: brandID, Conversation: fmt.Sprintf("conv-%d", time.Now().UnixNano())}
}

func obsOf(k bridge.Key) bridge.Observation {
	return bridge.Observation{Key: k, Platform: "fake", Consumer: "anon-1", Channel: "web", At: time.Now()}
}

func entryOf(k bridge.Key, e bridge.Effect) bridge.OutboxEntry {
	return bridge.OutboxEntry{ID: bridge.RandomString(12), Effect: e, Key: k, Platform: "fake", Consumer: "anon-1", Text: "hi", CreatedAt: time.Now()}
}

// TestScriptsLoad loads every script on every server: a Lua syntax error
// in a script the other tests do not reach fails here.
func TestScriptsLoad(t *testing.T) {
	eachTarget(t, func(t *testing.T, c redis.UniversalClient) {
		for i, sc := range redisstore.Scripts() {
			require.NoError(t, sc.Load(t.Context(), c).Err(), "script %d", i)
		}
	})
}

// TestTTLExpiry: keys carry real TTLs derived from the options and the
// command's expiries, and Redis removes them by itself.
func TestTTLExpiry(t *testing.T) {
	const sessionTTL, dedupeTTL, linkTTL, txnTTL = 700 * time.Millisecond, 500 * time.Millisecond, 400 * time.Millisecond, 300 * time.Millisecond
	eachTarget(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		s := redistest.Store(t, c, redisstore.Options{SessionTTL: sessionTTL, DedupeTTL: dedupeTTL})
		k := newKey()
		err := s.Observe(ctx, "ev-1", obsOf(k))
		require.NoError(t, err)
		tok := bridge.NewToken(k)
		now := time.Now()
		_, err = s.IssueTicket(ctx, bridge.IssueTicket{Key: k, TicketHash: tok.Hash(), Now: now, ExpiresAt: now.Add(linkTTL)})
		require.NoError(t, err)
		tok2 := bridge.NewToken(k)
		_, err = s.IssueTicket(ctx, bridge.IssueTicket{Key: k, TicketHash: tok2.Hash(), Now: now, ExpiresAt: now.Add(linkTTL)})
		require.NoError(t, err)
		txn := bridge.NewTokenIn(tok2.Partition)
		_, err = s.BeginLogin(ctx, bridge.BeginLogin{Brand: k.Brand, Partition: tok2.Partition, TicketHash: tok2.Hash(), TxnHash: txn.Hash(), Txn: bridge.LoginTxn{ExpiresAt: now.Add(txnTTL)}, Now: now})
		require.NoError(t, err)

		keys := []struct {
			name, key string
			ttl       time.Duration
		}{
			{"session", s.SessionKey(k), sessionTTL},
			{"dedupe", s.DedupeKey(k), dedupeTTL},
			{"replaced ticket", s.TicketKey(tok.Partition, tok.Hash()), linkTTL},
			{"login transaction", s.TxnKey(txn.Partition, txn.Hash()), txnTTL},
		}
		for _, kk := range keys {
			pttl, err := c.PTTL(ctx, kk.key).Result()
			require.NoError(t, err)
			assert.Greater(t, pttl, time.Duration(0), "%s has a TTL", kk.name)
			assert.LessOrEqual(t, pttl, kk.ttl, "%s TTL at most %s", kk.name, kk.ttl)
		}
		// The used ticket is deleted at once.
		n, err := c.Exists(ctx, s.TicketKey(tok2.Partition, tok2.Hash())).Result()
		require.NoError(t, err)
		assert.Zero(t, n, "a consumed ticket is deleted")

		time.Sleep(sessionTTL + 100*time.Millisecond)
		for _, kk := range keys {
			n, err := c.Exists(ctx, kk.key).Result()
			require.NoError(t, err)
			assert.Zero(t, n, "%s is gone after its TTL", kk.name)
		}
		_, err = s.Get(ctx, k)
		require.ErrorIs(t, err, bridge.ErrNotFound)
		// The event id is forgotten too: the same id is new again.
		require.NoError(t, s.Observe(ctx, "ev-1", obsOf(k)))
		sess, err := s.Get(ctx, k)
		require.NoError(t, err)
		assert.Equal(t, bridge.StateAnonymous, sess.State)
	})
}

// countingHook counts commands by name (and NOSCRIPT replies) and round
// trips (one per Process call, one per pipeline per server).
type countingHook struct {
	mu       sync.Mutex
	cmds     map[string]int
	noscript int
	trips    int
}

func newCountingHook() *countingHook { return &countingHook{cmds: map[string]int{}} }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.record(1, err, cmd)
		return err
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.record(1, nil, cmds...)
		return err
	}
}

// record counts cmds; err is a single command's error (go-redis sets it
// on the command only after the hooks ran), nil for a pipeline.
func (h *countingHook) record(trips int, err error, cmds ...redis.Cmder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.trips += trips
	for _, c := range cmds {
		h.cmds[strings.ToLower(c.Name())]++
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") || redis.HasErrorPrefix(err, "NOSCRIPT") {
			h.noscript++
		}
	}
}

func (h *countingHook) reset() (trips int, cmds map[string]int, noscript int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	trips, cmds, noscript = h.trips, h.cmds, h.noscript
	h.trips, h.cmds, h.noscript = 0, map[string]int{}, 0
	return
}

// attach counts the commands of c. On a Cluster the hook sits on the
// cluster client: a pipeline spread over several masters counts as one.
func attach(c redis.UniversalClient) *countingHook {
	h := newCountingHook()
	c.AddHook(h)
	return h
}

// TestScriptFlush: after SCRIPT FLUSH (a restarted or failed-over server)
// every kind of call reloads its script and works, the pipelined claim path
// included.
func TestScriptFlush(t *testing.T) {
	eachTarget(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		h := attach(c)
		s := redistest.Store(t, c, redisstore.Options{})
		k := newKey()
		flush := func() {
			t.Helper()
			require.NoError(t, c.ScriptFlush(ctx).Err())
			h.reset()
		}
		var ds []bridge.Delivery
		calls := []struct {
			name string
			fn   func() error
		}{
			{"observe", func() error { err := s.Observe(ctx, "ev-1", obsOf(k)); return err }},
			{"issue ticket", func() error {
				o := obsOf(k)
				_, err := s.IssueTicket(ctx, bridge.IssueTicket{Obs: &o, Key: k, TicketHash: bridge.NewToken(k).Hash(), Now: time.Now(), ExpiresAt: time.Now().Add(time.Minute), Outbox: []bridge.OutboxEntry{entryOf(k, bridge.EffectPostMessage)}})
				return err
			}},
			{"claim (pipelined)", func() error {
				var err error
				ds, err = s.Claim(ctx, "w1", 10, 0)
				if err == nil && len(ds) != 1 {
					return fmt.Errorf("claimed %d entries, want 1", len(ds))
				}
				return err
			}},
			{"ack", func() error { return s.Ack(ctx, ds[0]) }},
			{"confirm code", func() error {
				_, _, err := s.ConfirmCode(ctx, bridge.ConfirmCode{EventID: "m-1", Obs: obsOf(k), CodeHash: "x", MaxAttempts: 3})
				return err
			}},
		}
		for _, call := range calls {
			flush()
			require.NoError(t, call.fn(), call.name)
			_, cmds, noscript := h.reset()
			t.Logf("%s after SCRIPT FLUSH: %v", call.name, cmds)
			assert.Positive(t, noscript, "%s met NOSCRIPT (else the test tests nothing)", call.name)
		}
		// And the script is cached again: the next call needs no reload.
		_, _, err := s.ConfirmCode(ctx, bridge.ConfirmCode{EventID: "m-2", Obs: obsOf(k), CodeHash: "x", MaxAttempts: 3})
		require.NoError(t, err)
		_, _, noscript := h.reset()
		assert.Zero(t, noscript)
	})
}

// TestConcurrentCallers: many goroutines on separate Store objects (as
// separate replicas) race for the same ticket, the same code and the same
// event id; exactly one wins each time.
func TestConcurrentCallers(t *testing.T) {
	const n, rounds = 48, 3
	eachTarget(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		prefix := redistest.Prefix(t, c)
		stores := make([]*redisstore.Store, 4)
		for i := range stores {
			stores[i] = redistest.Store(t, c, redisstore.Options{Prefix: prefix})
		}
		race := func(fn func(i int, s *redisstore.Store) error) (ok int, errs []error) {
			var wg sync.WaitGroup
			var mu sync.Mutex
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					err := fn(i, stores[i%len(stores)])
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						ok++
					} else {
						errs = append(errs, err)
					}
				}()
			}
			close(start)
			wg.Wait()
			return ok, errs
		}
		s := stores[0]

		tests := []struct {
			name string
			run  func(t *testing.T, k bridge.Key)
		}{
			{"same ticket", func(t *testing.T, k bridge.Key) {
				o := obsOf(k)
				tok := bridge.NewToken(k)
				_, err := s.IssueTicket(ctx, bridge.IssueTicket{Obs: &o, Key: k, TicketHash: tok.Hash(), Now: time.Now(), ExpiresAt: time.Now().Add(time.Minute)})
				require.NoError(t, err)
				var winner atomic.Value
				ok, errs := race(func(i int, s *redisstore.Store) error {
					txn := bridge.NewTokenIn(tok.Partition)
					_, err := s.BeginLogin(ctx, bridge.BeginLogin{Brand: k.Brand, Partition: tok.Partition, TicketHash: tok.Hash(), TxnHash: txn.Hash(), Txn: bridge.LoginTxn{Nonce: fmt.Sprint(i), ExpiresAt: time.Now().Add(time.Minute)}, Now: time.Now()})
					if err == nil {
						winner.Store(txn)
					}
					return err
				})
				assert.Equal(t, 1, ok)
				for _, err := range errs {
					assert.ErrorIs(t, err, bridge.ErrTicketInvalid)
				}
				// The winner's transaction is there, and taken once.
				txn := winner.Load().(bridge.Token)
				ok, _ = race(func(_ int, s *redisstore.Store) error {
					_, err := s.TakeLogin(ctx, k.Brand, txn.Partition, txn.Hash(), time.Now())
					return err
				})
				assert.Equal(t, 1, ok, "a login transaction is taken once")
			}},
			{"same code", func(t *testing.T, k bridge.Key) {
				o := obsOf(k)
				_, err := s.IssueTicket(ctx, bridge.IssueTicket{Obs: &o, Key: k, TicketHash: bridge.NewToken(k).Hash(), Now: time.Now(), ExpiresAt: time.Now().Add(time.Minute)})
				require.NoError(t, err)
				_, err = s.VerifyLogin(ctx, bridge.VerifyLogin{Key: k, Identity: testIdentity(), Now: time.Now(), CodeHash: bridge.CodeHash(k, "424242"), CodeExpiresAt: time.Now().Add(time.Minute)})
				require.NoError(t, err)
				// Other rounds may share the partition's stream: count the growth.
				before, err := c.XLen(ctx, s.StreamKey(k.Partition())).Result()
				require.NoError(t, err)
				var matched atomic.Int32
				_, errs := race(func(i int, s *redisstore.Store) error {
					res, _, err := s.ConfirmCode(ctx, bridge.ConfirmCode{EventID: fmt.Sprintf("msg-%d", i), Obs: obsOf(k), CodeHash: bridge.CodeHash(k, "424242"), MaxAttempts: 3,
						Outbox: []bridge.OutboxEntry{entryOf(k, bridge.EffectAttachIdentity), entryOf(k, bridge.EffectNotifyAgents)}})
					if res == bridge.CodeMatched {
						matched.Add(1)
					}
					return err
				})
				assert.Empty(t, errs)
				assert.Equal(t, int32(1), matched.Load())
				xlen, err := c.XLen(ctx, s.StreamKey(k.Partition())).Result()
				require.NoError(t, err)
				assert.Equal(t, int64(2), xlen-before, "the winner's two outbox entries only")
			}},
			{"same event id", func(t *testing.T, k bridge.Key) {
				before, err := c.XLen(ctx, s.StreamKey(k.Partition())).Result()
				require.NoError(t, err)
				ok, errs := race(func(_ int, s *redisstore.Store) error {
					err := s.Observe(ctx, "dup-ev", obsOf(k))
					return err
				})
				assert.Equal(t, 1, ok)
				for _, err := range errs {
					assert.ErrorIs(t, err, bridge.ErrDuplicate)
				}
				// A link requested by one agent command (retried many times).
				ok, errs = race(func(_ int, s *redisstore.Store) error {
					o := obsOf(k)
					_, err := s.IssueTicket(ctx, bridge.IssueTicket{EventID: "cmd-ev", Obs: &o, Key: k, TicketHash: bridge.NewToken(k).Hash(), Now: time.Now(), ExpiresAt: time.Now().Add(time.Minute), Outbox: []bridge.OutboxEntry{entryOf(k, bridge.EffectPostMessage)}})
					return err
				})
				assert.Equal(t, 1, ok)
				for _, err := range errs {
					assert.ErrorIs(t, err, bridge.ErrDuplicate)
				}
				sess, err := s.Get(ctx, k)
				require.NoError(t, err)
				assert.Equal(t, 1, sess.LinksIssued)
				// A wrong code in one message (retried many times) costs one attempt.
				_, err = s.VerifyLogin(ctx, bridge.VerifyLogin{Key: k, Identity: testIdentity(), Now: time.Now(), CodeHash: bridge.CodeHash(k, "111111"), CodeExpiresAt: time.Now().Add(time.Minute)})
				require.NoError(t, err)
				ok, errs = race(func(_ int, s *redisstore.Store) error {
					_, _, err := s.ConfirmCode(ctx, bridge.ConfirmCode{EventID: "wrong-ev", Obs: obsOf(k), CodeHash: bridge.CodeHash(k, "999999"), MaxAttempts: 3})
					return err
				})
				assert.Equal(t, 1, ok)
				for _, err := range errs {
					assert.ErrorIs(t, err, bridge.ErrDuplicate)
				}
				sess, err = s.Get(ctx, k)
				require.NoError(t, err)
				assert.Equal(t, 1, sess.CodeAttempts)
				xlen, err := c.XLen(ctx, s.StreamKey(k.Partition())).Result()
				require.NoError(t, err)
				assert.Equal(t, int64(1), xlen-before, "one link message")
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				for r := range rounds {
					k := newKey()
					k.Conversation += fmt.Sprintf("-%d", r)
					tt.run(t, k)
				}
			})
		}
	})
}

// TestIdleWorkersForgotten: consumers of replicas that are gone (worker
// names carry host and pid) leave the consumer group once idle and empty;
// one holding an entry stays.
func TestIdleWorkersForgotten(t *testing.T) {
	eachTarget(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		s := redistest.Store(t, c, redisstore.Options{IdleWorkerTTL: 200 * time.Millisecond, ClaimTimeout: time.Minute})
		k := newKey()
		issue := func() {
			o := obsOf(k)
			_, err := s.IssueTicket(ctx, bridge.IssueTicket{Obs: &o, Key: k, TicketHash: bridge.NewToken(k).Hash(), Now: time.Now(), ExpiresAt: time.Now().Add(time.Minute), Outbox: []bridge.OutboxEntry{entryOf(k, bridge.EffectPostMessage)}})
			require.NoError(t, err)
		}
		claim := func(worker string) []bridge.Delivery {
			ds, err := s.Claim(ctx, worker, 10, 0)
			require.NoError(t, err)
			require.Len(t, ds, 1)
			return ds
		}
		issue()
		require.NoError(t, s.Ack(ctx, claim("old-host-1-0")[0]))
		issue()
		claim("old-host-2-0") // crashed holding its entry
		time.Sleep(300 * time.Millisecond)
		issue()
		require.NoError(t, s.Ack(ctx, claim("new-host-3-0")[0]))

		cs, err := c.XInfoConsumers(ctx, s.StreamKey(k.Partition()), redisstore.Group).Result()
		require.NoError(t, err)
		var names []string
		for _, cn := range cs {
			names = append(names, cn.Name)
		}
		assert.ElementsMatch(t, []string{"old-host-2-0", "new-host-3-0"}, names)
	})
}

// TestIdleWorkersShareSweeps: the workers of one store share their polls.
// Four idle workers polling every 50 ms used to sweep all partitions 80
// times a second between them (92 measured); now an empty sweep stands for
// all of them until the poll interval has passed.
func TestIdleWorkersShareSweeps(t *testing.T) {
	c := redistest.Client(t, redistest.StandaloneAddr())
	h := attach(c)
	s := redistest.Store(t, c, redisstore.Options{PollInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	h.reset()
	calls := atomic.Int64{}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				calls.Add(1)
				_, _ = s.Claim(ctx, fmt.Sprintf("w-%d", i), 16, 300*time.Millisecond)
			}
		})
	}
	wg.Wait()
	_, cmds, _ := h.reset()
	sweeps := cmds["evalsha"] / bridge.Partitions
	// One second: 20 shared polls at most (intervals start at the last
	// empty sweep, so fewer), plus the four workers' first sweeps, which
	// may overlap at the start.
	limit := 20 + 4
	t.Logf("%d sweeps (%d EVALSHA) by 4 workers in 1 s over %d Claim calls; per-worker polling would be ~80", sweeps, cmds["evalsha"], calls.Load())
	assert.LessOrEqual(t, sweeps, limit)
	assert.Less(t, sweeps, 60, "workers still poll one by one")
	assert.GreaterOrEqual(t, sweeps, 5, "idle workers must still poll")
}

// writeTwoEntries issues a login link on a new conversation through s,
// which writes two outbox entries to the conversation's partition.
func writeTwoEntries(t *testing.T, s *redisstore.Store) {
	t.Helper()
	k := newKey()
	obs := obsOf(k)
	tok := bridge.NewToken(k)
	_, err := s.IssueTicket(t.Context(), bridge.IssueTicket{Obs: &obs, Key: k, TicketHash: tok.Hash(), Now: time.Now(), ExpiresAt: time.Now().Add(time.Minute), Outbox: []bridge.OutboxEntry{entryOf(k, bridge.EffectPostMessage), entryOf(k, bridge.EffectNotifyAgents)}})
	require.NoError(t, err)
}

// TestLocalWriteClaimedInOneTrip: entries this store wrote are claimed
// from their partition directly, one script call, not after a probe of
// every partition; another store (replica) finds them by its sweep.
func TestLocalWriteClaimedInOneTrip(t *testing.T) {
	c := redistest.Client(t, redistest.StandaloneAddr())
	h := attach(c)
	prefix := redistest.Prefix(t, c)
	s := redistest.Store(t, c, redisstore.Options{Prefix: prefix})
	other := redistest.Store(t, c, redisstore.Options{Prefix: prefix})
	ctx := t.Context()
	writeTwoEntries(t, s)
	h.reset()
	ds, err := s.Claim(ctx, "w", 16, 0)
	require.NoError(t, err)
	require.Len(t, ds, 2)
	_, cmds, _ := h.reset()
	assert.Equal(t, 1, cmds["evalsha"], "the claim script alone, no probes")
	for _, d := range ds {
		require.NoError(t, s.Ack(ctx, d))
	}

	writeTwoEntries(t, other) // written by another replica: only a sweep finds it
	h.reset()
	ds, err = s.Claim(ctx, "w", 16, 0)
	require.NoError(t, err)
	require.Len(t, ds, 2)
	_, cmds, _ = h.reset()
	assert.Equal(t, bridge.Partitions+1, cmds["evalsha"], "a probe per partition and one claim")
	for _, d := range ds {
		require.NoError(t, s.Ack(ctx, d))
	}
}

// TestLegacySessionsAreRead: a session written by a bridge before sessions
// were MessagePack is read by the scripts (and by Get), and the next script
// that saves it writes it back as MessagePack: an upgrade does not turn live
// conversations into errors.
func TestLegacySessionsAreRead(t *testing.T) {
	eachTarget(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		s := redistest.Store(t, c, redisstore.Options{})
		k := newKey()
		now := time.Now()
		ms := strconv.FormatInt(now.UnixMilli(), 10)
		old := "pl4:fakecs6:anon-1ch3:webst1:asa" + strconv.Itoa(len(ms)) + ":" + ms + "ua" + strconv.Itoa(len(ms)) + ":" + ms + "ln1:2"
		require.NoError(t, c.Set(ctx, s.SessionKey(k), old, time.Hour).Err())

		sess, err := s.Get(ctx, k)
		require.NoError(t, err)
		assert.Equal(t, bridge.StateAnonymous, sess.State)
		assert.Equal(t, 2, sess.LinksIssued)

		require.NoError(t, s.Observe(ctx, "ev-legacy", obsOf(k)))
		sess, err = s.Get(ctx, k)
		require.NoError(t, err)
		assert.Equal(t, "anon-1", sess.Consumer)
		assert.Equal(t, 2, sess.LinksIssued, "fields of the old session are kept")
		raw, err := c.Get(ctx, s.SessionKey(k)).Result()
		require.NoError(t, err)
		assert.GreaterOrEqual(t, raw[0], byte(0x80), "saved back as a MessagePack map")

		err = s.Observe(ctx, "ev-legacy", obsOf(k))
		assert.ErrorIs(t, err, bridge.ErrDuplicate)
	})
}

// TestLocalWritesNeedNoSweep: an entry this store wrote is claimed from
// its partition directly, and that answers its wake-up: the worker goes
// back to waiting without sweeping every partition. (Before, every write
// was followed by a full sweep once its entries were delivered: under the
// load generator's mixed load, 64 extra script calls per login link.)
func TestLocalWritesNeedNoSweep(t *testing.T) {
	c := redistest.Client(t, redistest.StandaloneAddr())
	h := attach(c)
	prefix := redistest.Prefix(t, c)
	// No timed poll during the test: only wake-ups can cause sweeps.
	s := redistest.Store(t, c, redisstore.Options{Prefix: prefix, PollInterval: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := make(chan int)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		for ctx.Err() == nil {
			ds, err := s.Claim(ctx, "w", 16, time.Hour)
			if err != nil {
				continue
			}
			for _, d := range ds {
				assert.NoError(t, s.Ack(ctx, d))
			}
			select {
			case got <- len(ds):
			case <-ctx.Done():
			}
		}
	})
	// The worker's first Claim sweeps once (nothing there) and waits.
	swept := 0
	require.Eventually(t, func() bool {
		_, cmds, _ := h.reset()
		swept += cmds["evalsha"]
		return swept >= bridge.Partitions && cmds["evalsha"] == 0
	}, 5*time.Second, 50*time.Millisecond)

	const writes = 10
	for range writes {
		writeTwoEntries(t, s)
		select {
		case n := <-got:
			require.Equal(t, 2, n)
		case <-time.After(5 * time.Second):
			t.Fatal("the worker was not woken by a local write")
		}
	}
	time.Sleep(100 * time.Millisecond) // a sweep that follows the last write
	_, cmds, noscript := h.reset()
	// Per write: the issue script, one claim, two acks (plus a call
	// answered NOSCRIPT and sent again, on a server that has not seen the
	// script yet).
	ran := cmds["evalsha"] + cmds["eval"] - noscript
	t.Logf("%d scripts run for %d writes", ran, writes)
	assert.Equal(t, 4*writes, ran, "a local write must not cause a sweep of every partition")
}

// TestLocalWriteLeftoversAreSwept: when a direct claim of written
// partitions fills its batch, the partition may hold more, and the next
// waiting Claim sweeps for it at once rather than at the next poll.
func TestLocalWriteLeftoversAreSwept(t *testing.T) {
	c := redistest.Client(t, redistest.StandaloneAddr())
	s := redistest.Store(t, c, redisstore.Options{PollInterval: time.Hour})
	ctx := t.Context()
	ds, err := s.Claim(ctx, "w", 1, 10*time.Millisecond) // an empty sweep: answers for an hour
	require.NoError(t, err)
	require.Empty(t, ds)

	writeTwoEntries(t, s)
	first, err := s.Claim(ctx, "w", 1, time.Second)
	require.NoError(t, err)
	require.Len(t, first, 1)
	second, err := s.Claim(ctx, "w", 1, 2*time.Second)
	require.NoError(t, err)
	require.Len(t, second, 1, "the entry the direct claim left must be found without waiting for a poll")
	assert.NotEqual(t, first[0].Entry.ID, second[0].Entry.ID)
}

// TestExpiredEventIDsAreDropped: the observe script drops expired ids from
// a conversation's dedupe set on a sample of events only, which still
// keeps the set to the ids within the dedupe TTL.
func TestExpiredEventIDsAreDropped(t *testing.T) {
	c := redistest.Client(t, redistest.StandaloneAddr())
	s := redistest.Store(t, c, redisstore.Options{DedupeTTL: time.Hour})
	k := newKey()
	start := time.Now()
	observe := func(at time.Time, batch string) {
		for i := range 64 {
			obs := obsOf(k)
			obs.At = at.Add(time.Duration(i) * time.Second)
			require.NoError(t, s.Observe(t.Context(), fmt.Sprintf("%s-%d", batch, i), obs))
		}
	}
	observe(start, "first")
	observe(start.Add(2*time.Hour), "second")
	n, err := c.ZCard(t.Context(), s.DedupeKey(k)).Result()
	require.NoError(t, err)
	assert.Equal(t, int64(64), n, "the first 64 ids expired an hour before the second 64 came")
}
