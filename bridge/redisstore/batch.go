package redisstore

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// batcher sends concurrent calls of one script together ("group commit"):
// a call goes out at once while fewer than limit batches are in flight;
// calls that arrive while limit batches are in flight queue up, and when a
// batch completes, its leader hands the queue to the first waiting caller,
// which sends all of it as one pipeline. Nothing ever waits for a batch to
// fill, so an idle bridge pays no latency; a busy one pays one write and
// one read per batch instead of per call, and Redis reads and answers the
// whole batch in one go. Under the load generator's webhooks (64
// connections) this took about a fifth off the CPU the bridge and Redis
// spend per event (BENCHMARKS.md, round 3).
//
// Each call is still its own script: atomic on its own, with its own reply
// and error, and never sent twice (pipelines are not retried either; see
// NewClient).
type batcher struct {
	s     *Store
	sc    *redis.Script
	limit int

	mu       sync.Mutex
	inflight int
	queue    []*pending
}

type pending struct {
	c     call
	cmd   *redis.Cmd
	done  chan struct{} // closed when cmd is set, or when this caller leads
	batch []*pending    // set before done is closed: this caller sends these
}

func newBatcher(s *Store, sc *redis.Script, limit int) *batcher {
	return &batcher{s: s, sc: sc, limit: max(limit, 1)}
}

// do runs c and returns its command, finished. A caller that waits in the
// queue waits for its batch even when ctx ends (others' calls may be in it);
// the client's read and write timeouts bound that wait.
func (b *batcher) do(ctx context.Context, c call) *redis.Cmd {
	b.mu.Lock()
	if b.inflight < b.limit {
		b.inflight++
		b.mu.Unlock()
		cmd := b.sc.Run(ctx, b.s.c, c.keys, c.args...)
		b.next()
		return cmd
	}
	p := &pending{c: c, done: make(chan struct{})}
	b.queue = append(b.queue, p)
	b.mu.Unlock()
	<-p.done
	batch := p.batch
	if batch == nil {
		return p.cmd
	}
	calls := make([]call, len(batch))
	for i, q := range batch {
		calls[i] = q.c
	}
	// Not the leader's ctx alone: the batch carries other callers' calls.
	cmds := b.s.evalEach(context.WithoutCancel(ctx), b.sc, calls)
	for i, q := range batch {
		q.cmd = cmds[i]
		if q != p {
			close(q.done)
		}
	}
	b.next()
	return p.cmd
}

// next ends a batch: the first waiting caller sends the whole queue, or
// one batch less is in flight.
func (b *batcher) next() {
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.inflight--
		b.mu.Unlock()
		return
	}
	first := b.queue[0]
	first.batch = b.queue
	b.queue = nil
	b.mu.Unlock()
	close(first.done)
}
