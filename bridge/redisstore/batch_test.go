package redisstore_test

import (
	"errors"
	"fmt"
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

// observeMany runs workers goroutines of n Observe calls each: every even
// call on a new conversation with its own consumer, every odd call the
// previous event again, which must answer ErrDuplicate. Batches mix both,
// so a batch that mixed replies up fails here. It returns the calls that
// answered as expected, those that failed, and the sessions written
// (conversation → consumer) for checkWritten.
func observeMany(t *testing.T, s *redisstore.Store, workers, n int) (ok, failed int64, written map[bridge.Key]string) {
	t.Helper()
	var okN, failN atomic.Int64
	var mu sync.Mutex
	written = map[bridge.Key]string{}
	var wg sync.WaitGroup
	run := fmt.Sprintf("%d", time.Now().UnixNano())
	for w := range workers {
		wg.Go(func() {
			var obs bridge.Observation
			for i := range n {
				want := bridge.ErrDuplicate
				if i%2 == 0 {
					k := bridge.Key{Brand: brandID, Conversation: fmt.Sprintf("batch-%s-%d-%d", run, w, i)}
					obs = obsOf(k)
					obs.Consumer = fmt.Sprintf("consumer-%d-%d", w, i)
					want = nil
				}
				err := s.Observe(t.Context(), "ev-"+obs.Key.Conversation, obs)
				switch {
				case errors.Is(err, want):
					okN.Add(1)
					if want == nil {
						mu.Lock()
						written[obs.Key] = obs.Consumer
						mu.Unlock()
					}
				case errors.Is(err, bridge.ErrUnavailable):
					failN.Add(1)
				default:
					t.Errorf("call %d/%d on %s: %v, want %v", w, i, obs.Key.Conversation, err, want)
				}
			}
		})
	}
	wg.Wait()
	return okN.Load(), failN.Load(), written
}

// checkWritten reads back every session observeMany wrote: each call
// wrote its own.
func checkWritten(t *testing.T, s *redisstore.Store, written map[bridge.Key]string) {
	t.Helper()
	for k, consumer := range written {
		sess, err := s.Get(t.Context(), k)
		require.NoError(t, err)
		if sess.Consumer != consumer || sess.State != bridge.StateAnonymous {
			t.Errorf("%s: consumer %q state %s, want %q anonymous", k.Conversation, sess.Consumer, sess.State, consumer)
		}
	}
}

// TestObserveBatchesUnderLoad: concurrent Observe calls share round trips
// (fewer round trips than calls), and each still gets its own reply and
// writes its own session — on a single server and on a Cluster, where one
// batch spans several masters.
func TestObserveBatchesUnderLoad(t *testing.T) {
	eachTarget(t, func(t *testing.T, c redis.UniversalClient) {
		h := attach(c)
		s := redistest.Store(t, c, redisstore.Options{})
		const workers, n = 64, 30
		h.reset()
		ok, failed, written := observeMany(t, s, workers, n)
		trips, cmds, noscript := h.reset()
		require.Zero(t, failed)
		require.EqualValues(t, workers*n, ok)
		require.Len(t, written, workers*n/2)
		checkWritten(t, s, written)
		// A fresh server answers the first calls NOSCRIPT; those are sent
		// again once the script is loaded, having not run.
		assert.Equal(t, workers*n, cmds["evalsha"]+cmds["eval"]-noscript, "one script call per Observe, none run twice")
		t.Logf("%d Observe calls in %d round trips", workers*n, trips)
		assert.Less(t, trips, workers*n*3/4, "64 concurrent callers must share round trips")
	})
}

// TestObserveAloneIsNotBatched: a call with nothing else in flight goes
// out at once, on its own (no waiting for a batch to fill).
func TestObserveAloneIsNotBatched(t *testing.T) {
	c := redistest.Client(t, redistest.StandaloneAddr())
	h := attach(c)
	s := redistest.Store(t, c, redisstore.Options{})
	h.reset()
	for i := range 20 {
		err := s.Observe(t.Context(), fmt.Sprintf("ev-%d", i), obsOf(newKey()))
		require.NoError(t, err)
	}
	trips, cmds, _ := h.reset()
	assert.Equal(t, 20, trips)
	assert.Equal(t, 20, cmds["evalsha"])
}

// TestObserveBatchDedupe: the same event delivered twice at once, many
// times over, is taken exactly once whether or not both copies end up in
// one batch (scripts of a pipeline run one after the other).
func TestObserveBatchDedupe(t *testing.T) {
	c := redistest.Client(t, redistest.StandaloneAddr())
	s := redistest.Store(t, c, redisstore.Options{})
	const events, copies = 200, 4
	var ok, dup atomic.Int64
	var wg sync.WaitGroup
	k := newKey()
	for e := range events {
		for range copies {
			wg.Go(func() {
				err := s.Observe(t.Context(), fmt.Sprintf("ev-%d", e), obsOf(k))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, bridge.ErrDuplicate):
					dup.Add(1)
				default:
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	assert.EqualValues(t, events, ok.Load())
	assert.EqualValues(t, events*(copies-1), dup.Load())
}

// TestObserveBatchAfterScriptFlush: a batch that meets an empty script
// cache (a restarted server) loads the script and runs every call once.
func TestObserveBatchAfterScriptFlush(t *testing.T) {
	srv := redistest.StartServer(t) // skips under -short
	c := redistest.Client(t, srv.Addr)
	h := attach(c)
	s := redistest.Store(t, c, redisstore.Options{})
	for range 3 {
		require.NoError(t, c.ScriptFlush(t.Context()).Err())
		h.reset()
		ok, failed, _ := observeMany(t, s, 32, 10)
		_, cmds, noscript := h.reset()
		require.Zero(t, failed)
		require.EqualValues(t, 320, ok)
		assert.Equal(t, 320, cmds["evalsha"]+cmds["eval"]-noscript, "every call ran exactly once")
	}
}

// TestObserveBatchOutage: when the server goes away, every caller of a
// batch gets bridge.ErrUnavailable (a 503 for the platform to retry), none
// hangs, and the batcher works again once the server is back.
func TestObserveBatchOutage(t *testing.T) {
	srv := redistest.StartServer(t) // skips under -short
	c := redistest.Client(t, srv.Addr)
	s := redistest.Store(t, c, redisstore.Options{})
	ok, failed, _ := observeMany(t, s, 16, 5)
	require.EqualValues(t, 80, ok)
	require.Zero(t, failed)

	srv.Kill()
	var wg sync.WaitGroup
	var other atomic.Int64
	start := time.Now()
	for w := range 64 {
		wg.Go(func() {
			err := s.Observe(t.Context(), fmt.Sprintf("ev-%d", w), obsOf(newKey()))
			if !errors.Is(err, bridge.ErrUnavailable) {
				other.Add(1)
				t.Errorf("call %d: %v, want ErrUnavailable", w, err)
			}
		})
	}
	wg.Wait()
	assert.Zero(t, other.Load())
	assert.Less(t, time.Since(start), 10*time.Second, "calls must fail, not hang")

	srv.Restart()
	require.Eventually(t, func() bool { return s.Ping(t.Context()) == nil }, 10*time.Second, 50*time.Millisecond)
	ok, failed, written := observeMany(t, s, 16, 5)
	assert.EqualValues(t, 80, ok)
	assert.Zero(t, failed)
	checkWritten(t, s, written)
}
