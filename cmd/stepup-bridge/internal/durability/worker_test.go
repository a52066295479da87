package durability

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/memstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore/redistest"
)

// The outbox workers on both stores, in one process: the same scenarios,
// the same outcomes. These run in the fast tier (the Redis variant needs
// the shared Redis at 127.0.0.1:6379, or STEPUP_REDIS_ADDR).

// lease is the stores' claim timeout here: short, so a stolen lease shows.
const lease = 400 * time.Millisecond

type storeKind struct {
	name string
	new  func(t *testing.T) (bridge.Store, func() (dead int64, depth int64))
}

// storeKinds: memory, standalone Redis, and Redis Cluster when
// STEPUP_REDIS_CLUSTER is set (skipped otherwise).
func storeKinds() []storeKind {
	kinds := []storeKind{{"memory", func(t *testing.T) (bridge.Store, func() (int64, int64)) {
		s := memstore.New(memstore.Options{ClaimTimeout: lease})
		return s, func() (int64, int64) {
			st, err := s.OutboxStats(context.Background())
			require.NoError(t, err)
			return st.Dead, st.Ready + st.Delayed
		}
	}}}
	for _, target := range redistest.Targets() {
		kinds = append(kinds, storeKind{"redis-" + target.Name, func(t *testing.T) (bridge.Store, func() (int64, int64)) {
			s := redisStore(t, target)
			return s, func() (int64, int64) {
				st, err := s.OutboxStats(context.Background())
				require.NoError(t, err)
				return st.Dead, st.Depth()
			}
		}})
	}
	return kinds
}

func redisStore(t *testing.T, target redistest.Target) *redisstore.Store {
	t.Helper()
	if target.Skip != "" {
		t.Skip(target.Skip)
	}
	c := redistest.Client(t, target.Addrs...)
	return redistest.Store(t, c, redisstore.Options{ClaimTimeout: lease, PollInterval: 50 * time.Millisecond})
}

// scriptedPlatform answers each entry's n-th call (1-based) with answer,
// counting calls per entry id.
type scriptedPlatform struct {
	answer func(n int) error
	delay  time.Duration

	mu          sync.Mutex
	calls       map[string]int
	inFlight    int
	maxInFlight int
}

func (p *scriptedPlatform) ParseWebhook(context.Context, bridge.WebhookRequest) ([]bridge.Event, error) {
	return nil, nil
}

func (p *scriptedPlatform) Deliver(ctx context.Context, e bridge.OutboxEntry) error {
	p.mu.Lock()
	p.calls[e.ID]++
	n := p.calls[e.ID]
	p.inFlight++
	p.maxInFlight = max(p.maxInFlight, p.inFlight)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inFlight--
		p.mu.Unlock()
	}()
	if p.delay > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(p.delay):
		}
	}
	return p.answer(n)
}

func (p *scriptedPlatform) counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.calls))
	for k, v := range p.calls {
		out[k] = v
	}
	return out
}

// lockedBuffer collects worker logs written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type workerFix struct {
	t        *testing.T
	store    bridge.Store
	stats    func() (int64, int64)
	platform *scriptedPlatform
	svc      *bridge.Service
	logs     *lockedBuffer
	entries  []string
}

func newWorkerFix(t *testing.T, k storeKind, p *scriptedPlatform) *workerFix {
	f := &workerFix{t: t, platform: p, logs: &lockedBuffer{}}
	p.calls = map[string]int{}
	f.store, f.stats = k.new(t)
	var err error
	f.svc, err = bridge.NewService(bridge.Options{
		Store: f.store, Brands: []*bridge.Brand{{ID: "acme", Platforms: map[string]bridge.Platform{"standard": p}}},
		PublicURL: "https://bridge.example", Logger: slog.New(slog.NewTextHandler(f.logs, nil)),
	})
	require.NoError(t, err)
	return f
}

// enqueue writes n entries with one state change (a login link each).
func (f *workerFix) enqueue(n int) {
	f.t.Helper()
	for i := range n {
		key := bridge.Key{Brand: "acme", Conversation: fmt.Sprintf("c-%s-%d", bridge.RandomString(6), i)}
		e := bridge.OutboxEntry{ID: bridge.RandomString(16), Effect: bridge.EffectPostMessage, Key: key, Platform: "standard", Text: "link", CreatedAt: time.Now()}
		obs := bridge.Observation{Key: key, Platform: "standard", Consumer: "u", At: time.Now()}
		_, err := f.store.IssueTicket(context.Background(), bridge.IssueTicket{Obs: &obs, Key: key, TicketHash: bridge.NewToken(key).Hash(), Now: time.Now(), ExpiresAt: time.Now().Add(time.Minute), Outbox: []bridge.OutboxEntry{e}})
		require.NoError(f.t, err)
		f.entries = append(f.entries, e.ID)
	}
}

// run starts workers under name until the test ends.
func (f *workerFix) run(name string, p bridge.DeliveryPolicy) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.svc.RunWorkers(ctx, p, name)
	}()
	f.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			f.t.Error("workers did not stop")
		}
	})
}

// settled waits until the outbox is empty with dead dead letters.
func (f *workerFix) settled(dead int64) {
	f.t.Helper()
	eventually(f.t, 20*time.Second, fmt.Sprintf("an empty outbox with %d dead letters", dead), func() bool {
		d, depth := f.stats()
		return d == dead && depth == 0
	})
}

func policy(workers, maxAttempts int) bridge.DeliveryPolicy {
	return bridge.DeliveryPolicy{Workers: workers, MaxAttempts: maxAttempts, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, CallTimeout: 2 * time.Second}
}

var errUnavailable = errors.New("platform: 503 Service Unavailable")

func TestWorkers(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			t.Run("transient failures then success: once each", func(t *testing.T) {
				f := newWorkerFix(t, k, &scriptedPlatform{answer: func(n int) error {
					if n <= 3 {
						return errUnavailable
					}
					return nil
				}})
				f.enqueue(12)
				f.run("w", policy(3, 10))
				f.settled(0)
				for _, id := range f.entries {
					assert.Equal(t, 4, f.platform.counts()[id], "entry %s: three failures, one success, nothing after", id)
				}
			})
			t.Run("permanent failure: dead letter at once", func(t *testing.T) {
				f := newWorkerFix(t, k, &scriptedPlatform{answer: func(int) error { return bridge.Permanent(errors.New("platform: 400 Bad Request")) }})
				f.enqueue(5)
				f.run("w", policy(2, 10))
				f.settled(5)
				for _, id := range f.entries {
					assert.Equal(t, 1, f.platform.counts()[id], "entry %s: no retry of a permanent failure", id)
				}
			})
			t.Run("last attempt: dead letter", func(t *testing.T) {
				f := newWorkerFix(t, k, &scriptedPlatform{answer: func(int) error { return errUnavailable }})
				f.enqueue(4)
				f.run("w", policy(2, 3))
				f.settled(4)
				for _, id := range f.entries {
					assert.Equal(t, 3, f.platform.counts()[id], "entry %s: max_attempts calls", id)
				}
			})
			t.Run("one worker attempts a claimed batch's entries at once", func(t *testing.T) {
				f := newWorkerFix(t, k, &scriptedPlatform{delay: 200 * time.Millisecond, answer: func(int) error { return nil }})
				f.enqueue(6) // written before the worker starts: one claim takes them all
				f.run("w", policy(1, 10))
				f.settled(0)
				f.platform.mu.Lock()
				peak := f.platform.maxInFlight
				f.platform.mu.Unlock()
				assert.Equal(t, 4, peak, "calls in flight at once (batchParallel)")
				for _, id := range f.entries {
					assert.Equal(t, 1, f.platform.counts()[id], "entry %s delivered once", id)
				}
			})
			t.Run("a batch outliving its lease is not delivered twice", func(t *testing.T) {
				// One worker claims the whole batch (16); its calls are slow
				// (4 at a time, 300 ms each: 1.2 s for the batch), so the
				// last entries wait past their lease (400 ms) and a second
				// replica takes them. The check before each attempt makes
				// the first worker skip what is no longer its own.
				f := newWorkerFix(t, k, &scriptedPlatform{delay: 300 * time.Millisecond, answer: func(int) error { return nil }})
				f.enqueue(16)
				f.run("a", policy(1, 10))
				eventually(t, 10*time.Second, "the first call", func() bool { return len(f.platform.counts()) > 0 })
				f.run("b", policy(1, 10))
				f.settled(0)
				for _, id := range f.entries {
					assert.Equal(t, 1, f.platform.counts()[id], "entry %s delivered once", id)
				}
				skipped := strings.Count(f.logs.String(), "outbox delivery skipped")
				require.Positive(t, skipped, "no lease ran out: the test tests nothing")
				t.Logf("%d deliveries skipped by the check before the attempt", skipped)
			})
		})
	}
}

// The Redis completion marker: a worker whose lease ran out completes the
// entry after another worker scheduled a retry of it; the retried copy is
// removed when it is claimed instead of being delivered again (which lets
// a worker skip the check before the first attempt of a fresh claim).
func TestRedisCompletionMarker(t *testing.T) {
	for _, target := range redistest.Targets() {
		t.Run(target.Name, func(t *testing.T) { testCompletionMarker(t, redisStore(t, target)) })
	}
}

func testCompletionMarker(t *testing.T, s *redisstore.Store) {
	ctx := context.Background()
	f := &workerFix{t: t, store: s}
	f.enqueue(1)

	claim := func(worker string) []bridge.Delivery {
		t.Helper()
		ds, err := s.Claim(ctx, worker, 10, 0)
		require.NoError(t, err)
		return ds
	}
	stale := claim("a")
	require.Len(t, stale, 1)
	time.Sleep(lease + 100*time.Millisecond)
	cur := claim("b")
	require.Len(t, cur, 1, "the lease ran out")
	assert.Equal(t, 2, cur[0].Attempt)

	ok, err := s.Renew(ctx, stale[0])
	require.NoError(t, err)
	assert.False(t, ok, "a's lease is gone")

	// b's attempt fails and is scheduled again; a's attempt had succeeded.
	require.NoError(t, s.Retry(ctx, cur[0], time.Now(), "503"))
	require.NoError(t, s.Ack(ctx, stale[0]))

	assert.Empty(t, claim("c"), "the retried copy is settled by the claim, not handed out: the entry is done")
	st, err := s.OutboxStats(ctx)
	require.NoError(t, err)
	assert.Zero(t, st.Depth(), "and it is gone")
	time.Sleep(lease + 100*time.Millisecond)
	assert.Empty(t, claim("d"))

	// Renew restarts a lease: an entry renewed in time is not taken.
	f.enqueue(1)
	ds := claim("a")
	require.Len(t, ds, 1)
	time.Sleep(lease * 3 / 4)
	ok, err = s.Renew(ctx, ds[0])
	require.NoError(t, err)
	require.True(t, ok)
	time.Sleep(lease * 3 / 4)
	assert.Empty(t, claim("b"), "renewed")
	require.NoError(t, s.Ack(ctx, ds[0]))
}
