package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// The outbox: one stream per partition, written by the state-changing
// scripts, consumed by the consumer group "stepup". A claim sweep is two
// pipelined round trips per server: a read-only probe of every partition
// (due retries, new entries, expired leases), then a claim script on the
// partitions that have work, with at most max entries in all. Leases are
// Redis idle times (XAUTOCLAIM after ClaimTimeout); retries wait in the
// partition's delayed set, scored by the injected clock.

// call is one script call of a pipelined batch.
type call struct {
	p    int
	keys []string
	args []any
	want int64 // a claim: how many entries it asks for
}

// evalEach runs sc once per call in one pipeline (one round trip per
// server). Calls that hit an empty script cache (a restarted or flushed
// server) are run again after loading the script; calls that ran are never
// repeated.
func (s *Store) evalEach(ctx context.Context, sc *redis.Script, calls []call) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(calls))
	run := func(idx []int) {
		_, _ = s.c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for _, i := range idx {
				cmds[i] = sc.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
			}
			return nil
		})
	}
	all := make([]int, len(calls))
	for i := range all {
		all[i] = i
	}
	run(all)
	var again []int
	for i, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		// On a Cluster, SCRIPT LOAD goes to every master.
		if err := sc.Load(ctx, s.c).Err(); err != nil {
			return cmds
		}
		run(again)
	}
	return cmds
}

// Claim implements bridge.Outbox.
//
// The workers of one store share their polls: a sweep in progress, or one
// that found nothing less than a poll interval ago, answers for every
// waiting Claim of the store until the store writes new entries, so an
// idle replica sweeps about once per poll interval however many workers it
// runs, and an entry written here wakes one worker, not all, which claims
// it from its partition without a sweep. A sweep or claim that filled its
// batch wakes another worker to sweep: there may be more. A Claim that
// does not wait (wait 0: a caller asking now) always asks Redis.
func (s *Store) Claim(ctx context.Context, worker string, max int, wait time.Duration) ([]bridge.Delivery, error) {
	if max <= 0 {
		return nil, nil
	}
	deadline := time.Now().Add(wait)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if ds, err := s.claimDirty(ctx, worker, max); err != nil || len(ds) > 0 {
			return ds, err
		}
		started := time.Now()
		s.mu.Lock()
		wakes := s.wakes
		// A sweep in progress, or an empty one less than a poll interval
		// ago, with nothing written here since, answers for this poll too.
		// (A Claim that does not wait runs this once, and always sweeps.)
		skip := wait > 0 && wakes == s.sweepWake && (s.sweeping > 0 || started.Sub(s.sweepAt) < s.opts.PollInterval)
		if !skip {
			s.sweeping++
			s.sweepAt, s.sweepWake = started, wakes
		}
		s.mu.Unlock()
		if !skip {
			ds, err := s.claimOnce(ctx, worker, max)
			s.mu.Lock()
			s.sweeping--
			if (err != nil || len(ds) > 0) && s.sweepAt.Equal(started) {
				s.sweepAt = time.Time{} // it found work or failed: it answers for no one
			}
			s.mu.Unlock()
			if err != nil {
				return nil, err
			}
			if len(ds) >= max {
				s.enqueued(-1)
			}
			if len(ds) > 0 {
				return ds, nil
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		timer := time.NewTimer(min(left, s.opts.PollInterval))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-s.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// claimDirty claims from the partitions this store wrote since a Claim
// last looked at them, without a probe: a step-up's effects reach a
// worker in one round trip instead of a sweep of every partition and a
// claim. Entries it leaves (more than max) are found by the sweep.
func (s *Store) claimDirty(ctx context.Context, worker string, max int) ([]bridge.Delivery, error) {
	s.mu.Lock()
	n := min(len(s.dirty), max)
	ps := slices.Clone(s.dirty[:n])
	s.dirty = slices.Delete(s.dirty, 0, n)
	s.mu.Unlock()
	if n == 0 {
		return nil, nil
	}
	now := ms(s.opts.Clock.Now())
	calls := make([]call, n)
	for i, p := range ps {
		each := max / n
		if i < max%n {
			each++
		}
		calls[i] = s.claimCall(p, worker, now, int64(each))
	}
	out, more, err := s.claimCalls(ctx, calls, nil)
	if more || err != nil {
		s.enqueued(-1) // there may be more: let a worker sweep
	}
	return out, err
}

// claimCall is the claim script call for partition p.
func (s *Store) claimCall(p int, worker string, now int64, n int64) call {
	return call{p: p, keys: []string{s.k.streams[p], s.k.delayed[p], s.doneKey(p)}, args: []any{group, worker, now, ttlMS(s.opts.ClaimTimeout), n, ttlMS(s.opts.IdleWorkerTTL)}, want: n}
}

// claimOnce sweeps every partition once.
func (s *Store) claimOnce(ctx context.Context, worker string, max int) ([]bridge.Delivery, error) {
	now := ms(s.opts.Clock.Now())
	lease := ttlMS(s.opts.ClaimTimeout)
	probes := make([]call, bridge.Partitions)
	for p := range bridge.Partitions {
		probes[p] = call{p: p, keys: []string{s.k.streams[p], s.k.delayed[p]}, args: []any{group, now, lease, max}}
	}
	var firstErr error
	work := make([]int64, bridge.Partitions)
	for p, cmd := range s.evalEach(ctx, probeScript, probes) {
		n, err := cmd.Int64()
		if err != nil {
			firstErr = cmp(firstErr, err)
			continue
		}
		work[p] = n
	}

	s.mu.Lock()
	start := int(s.next % bridge.Partitions)
	s.next++
	s.mu.Unlock()
	var claims []call
	left := int64(max)
	for i := range bridge.Partitions {
		p := (start + i) % bridge.Partitions
		if work[p] == 0 || left == 0 {
			continue
		}
		n := min(work[p], left)
		left -= n
		claims = append(claims, s.claimCall(p, worker, now, n))
	}
	if len(claims) == 0 {
		if firstErr != nil {
			return nil, s.fail(ctx, "claim", firstErr)
		}
		return nil, nil
	}
	out, _, err := s.claimCalls(ctx, claims, firstErr)
	return out, err
}

// claimCalls runs claim script calls in one pipeline and collects their
// deliveries; firstErr is a failure that came before (the sweep's probes).
// more reports a call that failed or got all it asked for: its partition
// may hold more.
func (s *Store) claimCalls(ctx context.Context, claims []call, firstErr error) (out []bridge.Delivery, more bool, err error) {
	for i, cmd := range s.evalEach(ctx, claimScript, claims) {
		items, err := cmd.Slice()
		if err != nil {
			firstErr = cmp(firstErr, err)
			more = true
			continue
		}
		if int64(len(items)) >= claims[i].want {
			more = true
		}
		for _, it := range items {
			d, err := s.delivery(claims[i].p, it)
			if err != nil {
				s.dropUndecodable(ctx, claims[i].p, it, err)
				continue
			}
			out = append(out, d)
		}
	}
	// Entries claimed from healthy partitions are handed out even when
	// another server failed: leaving them unreturned would hold them for a
	// whole lease.
	if len(out) == 0 && firstErr != nil {
		return nil, more, s.fail(ctx, "claim", firstErr)
	}
	if firstErr != nil {
		s.log.Warn("outbox claim: some partitions unavailable", "error", firstErr)
	}
	return out, more, nil
}

func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// claimed is one entry of a claim script reply.
type claimed struct {
	id         string
	fields     map[string]string
	deliveries int64
}

func parseClaimed(it any) (claimed, error) {
	row, ok := it.([]any)
	if !ok || len(row) != 3 {
		return claimed{}, fmt.Errorf("claim reply row is %T", it)
	}
	c := claimed{fields: map[string]string{}}
	c.id, _ = row[0].(string)
	list, _ := row[1].([]any)
	for i := 0; i+1 < len(list); i += 2 {
		k, _ := list[i].(string)
		v, _ := list[i+1].(string)
		c.fields[k] = v
	}
	c.deliveries, _ = row[2].(int64)
	if c.id == "" || c.deliveries < 1 {
		return c, errors.New("claim reply row without id or delivery count")
	}
	return c, nil
}

func (s *Store) delivery(p int, it any) (bridge.Delivery, error) {
	c, err := parseClaimed(it)
	if err != nil {
		return bridge.Delivery{}, err
	}
	var e bridge.OutboxEntry
	if err := json.Unmarshal([]byte(c.fields["b"]), &e); err != nil {
		return bridge.Delivery{}, fmt.Errorf("decode outbox entry: %w", err)
	}
	n, _ := strconv.Atoi(c.fields["n"])
	return bridge.Delivery{
		Entry:     e,
		Attempt:   n + int(c.deliveries),
		Handle:    fmt.Sprintf("%d:%s:%d", p, c.id, c.deliveries),
		ClaimedAt: s.opts.Clock.Now(),
	}, nil
}

// dropUndecodable buries an entry no worker could ever deliver.
func (s *Store) dropUndecodable(ctx context.Context, p int, it any, cause error) {
	c, err := parseClaimed(it)
	if err != nil {
		s.log.Error("outbox: unreadable claim reply", "partition", p, "error", cause)
		return
	}
	s.log.Error("outbox: undecodable entry moved to dead letters", "partition", p, "stream_id", c.id, "error", cause)
	_ = s.bury(ctx, p, c.id, strconv.FormatInt(c.deliveries, 10), "undecodable entry: "+cause.Error())
}

// handle is a parsed Delivery.Handle: partition, stream id, deliveries.
type handle struct {
	p          int
	id         string
	deliveries string
}

func parseHandle(h string) (handle, error) {
	parts := strings.Split(h, ":")
	if len(parts) != 3 {
		return handle{}, fmt.Errorf("redisstore: malformed delivery handle %q", h)
	}
	p, err := strconv.Atoi(parts[0])
	if err != nil || p < 0 || p >= bridge.Partitions || !streamID(parts[1]) {
		return handle{}, fmt.Errorf("redisstore: malformed delivery handle %q", h)
	}
	if _, err := strconv.Atoi(parts[2]); err != nil {
		return handle{}, fmt.Errorf("redisstore: malformed delivery handle %q", h)
	}
	return handle{p: p, id: parts[1], deliveries: parts[2]}, nil
}

// streamID reports whether id looks like a stream entry id ("ms-seq").
func streamID(id string) bool {
	a, b, ok := strings.Cut(id, "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(a, 10, 64)
	_, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil
}

// doneRetention is how long Ack's completion marker (the entry id in the
// partition's done set) keeps a copy of a completed entry from being
// delivered again. Copies arise only from a worker whose lease ran out
// (stalled longer than ClaimTimeout), and are due within the maximum
// backoff (1h by default); past this, the idempotency key sent to the
// platform is the only guard. About 130 bytes per entry acknowledged in
// the last doneRetention (measured: 1.29 MB for 10,000 markers).
const doneRetention = 6 * time.Hour

// doneKey is a partition's set of completed entry ids.
func (s *Store) doneKey(p int) string { return s.k.tags[p] + "outbox:done" }

// Ack implements bridge.Outbox: the entry is removed whoever holds it now,
// and its entry id is marked done.
func (s *Store) Ack(ctx context.Context, d bridge.Delivery) error {
	h, err := parseHandle(d.Handle)
	if err != nil {
		return err
	}
	err = ackScript.Run(ctx, s.c, []string{s.k.streams[h.p], s.doneKey(h.p)}, group, h.id, d.Entry.ID, ms(s.opts.Clock.Now()), ttlMS(doneRetention)).Err()
	if err != nil {
		return s.fail(ctx, "ack", err)
	}
	return nil
}

// Renew implements bridge.Renewer, the check before each attempt: false
// when the entry is done already (the copy is removed) or the handle is
// stale; otherwise the lease starts over.
func (s *Store) Renew(ctx context.Context, d bridge.Delivery) (bool, error) {
	h, err := parseHandle(d.Handle)
	if err != nil {
		return false, err
	}
	n, err := renewScript.Run(ctx, s.c, []string{s.k.streams[h.p], s.doneKey(h.p)}, group, h.id, h.deliveries, d.Entry.ID, ms(s.opts.Clock.Now())).Int64()
	if err != nil {
		return false, s.fail(ctx, "renew", err)
	}
	if n == 2 {
		s.log.Info("outbox: copy of a completed entry removed", "entry", d.Entry.ID)
	}
	return n == 1, nil
}

// Retry implements bridge.Outbox. A stale delivery (its lease ran out and
// another worker holds the entry now, or it is settled) changes nothing.
func (s *Store) Retry(ctx context.Context, d bridge.Delivery, at time.Time, reason string) error {
	h, err := parseHandle(d.Handle)
	if err != nil {
		return err
	}
	moved, err := retryScript.Run(ctx, s.c, []string{s.k.streams[h.p], s.k.delayed[h.p]}, group, h.id, h.deliveries, ms(at)).Int64()
	if err != nil {
		return s.fail(ctx, "retry", err)
	}
	if moved == 0 {
		s.log.Debug("outbox retry of a stale delivery ignored", "entry", d.Entry.ID)
	}
	return nil
}

// Bury implements bridge.Outbox. A stale delivery changes nothing.
func (s *Store) Bury(ctx context.Context, d bridge.Delivery, reason string) error {
	h, err := parseHandle(d.Handle)
	if err != nil {
		return err
	}
	return s.bury(ctx, h.p, h.id, h.deliveries, reason)
}

func (s *Store) bury(ctx context.Context, p int, id, deliveries, reason string) error {
	err := buryScript.Run(ctx, s.c, []string{s.k.streams[p], s.k.dead[p]},
		group, id, deliveries, reason, ms(s.opts.Clock.Now()), s.opts.DeadLetterMax, ttlMS(s.opts.DeadLetterRetention)).Err()
	if err != nil {
		return s.fail(ctx, "bury", err)
	}
	return nil
}

// DeadLetter is an outbox entry that will not be retried.
type DeadLetter struct {
	// ID names the dead letter for Replay and Drop: "<partition>:<stream id>".
	ID       string
	Entry    bridge.OutboxEntry
	Attempts int
	Reason   string
	At       time.Time // when it was buried (store clock)
}

// DeadLetters lists up to limit dead letters (all when limit <= 0), oldest
// first.
func (s *Store) DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error) {
	cmds := make([]*redis.XMessageSliceCmd, bridge.Partitions)
	_, err := s.c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for p := range bridge.Partitions {
			if limit > 0 {
				cmds[p] = pipe.XRangeN(ctx, s.k.dead[p], "-", "+", int64(limit))
			} else {
				cmds[p] = pipe.XRange(ctx, s.k.dead[p], "-", "+")
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.fail(ctx, "list dead letters", err)
	}
	var out []DeadLetter
	for p, cmd := range cmds {
		for _, m := range cmd.Val() {
			dl := DeadLetter{ID: fmt.Sprintf("%d:%s", p, m.ID)}
			str := func(k string) string { v, _ := m.Values[k].(string); return v }
			if err := json.Unmarshal([]byte(str("b")), &dl.Entry); err != nil {
				dl.Entry.ID = str("i")
			}
			dl.Attempts, _ = strconv.Atoi(str("n"))
			dl.Reason = str("r")
			dl.At = fromMS(str("t"))
			out = append(out, dl)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].ID < out[j].ID
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *Store) deadID(id string) (int, string, error) {
	ps, sid, ok := strings.Cut(id, ":")
	p, err := strconv.Atoi(ps)
	if !ok || err != nil || p < 0 || p >= bridge.Partitions || !streamID(sid) {
		return 0, "", fmt.Errorf("redisstore: dead letter %q: %w", id, bridge.ErrNotFound)
	}
	return p, sid, nil
}

// Replay puts a dead letter back into the outbox with a fresh attempt
// count. An unknown id is bridge.ErrNotFound.
func (s *Store) Replay(ctx context.Context, id string) error {
	p, sid, err := s.deadID(id)
	if err != nil {
		return err
	}
	n, err := replayScript.Run(ctx, s.c, []string{s.k.dead[p], s.k.streams[p]}, group, sid).Int64()
	if err != nil {
		return s.fail(ctx, "replay", err)
	}
	if n == 0 {
		return fmt.Errorf("redisstore: dead letter %q: %w", id, bridge.ErrNotFound)
	}
	s.enqueued(p)
	return nil
}

// Drop deletes a dead letter. An unknown id is bridge.ErrNotFound.
func (s *Store) Drop(ctx context.Context, id string) error {
	p, sid, err := s.deadID(id)
	if err != nil {
		return err
	}
	n, err := s.c.XDel(ctx, s.k.dead[p], sid).Result()
	if err != nil {
		return s.fail(ctx, "drop", err)
	}
	if n == 0 {
		return fmt.Errorf("redisstore: dead letter %q: %w", id, bridge.ErrNotFound)
	}
	return nil
}

// OutboxStats is the outbox at a glance (for metrics and the CLI).
type OutboxStats struct {
	Ready    int64 // entries in the streams: due, or handed out and not settled
	InFlight int64 // of Ready, handed to a worker and not settled
	Delayed  int64 // waiting for a retry
	Dead     int64 // dead letters
	// OldestAge is how long ago (store clock) the oldest entry at the head
	// of a stream or first in a retry queue was created; 0 when empty.
	OldestAge time.Duration
}

// Depth is what is waiting to be delivered.
func (o OutboxStats) Depth() int64 { return o.Ready + o.Delayed }

// OutboxStats reads the outbox counters (one pipelined round trip).
func (s *Store) OutboxStats(ctx context.Context) (OutboxStats, error) {
	type part struct {
		ready, delayed, dead *redis.IntCmd
		pending              *redis.XPendingCmd
		head                 *redis.XMessageSliceCmd
		next                 *redis.StringSliceCmd
	}
	parts := make([]part, bridge.Partitions)
	_, err := s.c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for p := range bridge.Partitions {
			parts[p] = part{
				ready:   pipe.XLen(ctx, s.k.streams[p]),
				delayed: pipe.ZCard(ctx, s.k.delayed[p]),
				dead:    pipe.XLen(ctx, s.k.dead[p]),
				pending: pipe.XPending(ctx, s.k.streams[p], group),
				head:    pipe.XRangeN(ctx, s.k.streams[p], "-", "+", 1),
				next:    pipe.ZRange(ctx, s.k.delayed[p], 0, 0),
			}
		}
		return nil
	})
	var st OutboxStats
	if err != nil {
		// A stream without a group answers XPENDING with NOGROUP: not an outage.
		for _, pt := range parts {
			if e := pt.ready.Err(); e != nil {
				return st, s.fail(ctx, "outbox stats", e)
			}
		}
	}
	now := s.opts.Clock.Now()
	var oldest time.Time
	seen := func(body string) {
		var e bridge.OutboxEntry
		if json.Unmarshal([]byte(body), &e) == nil && !e.CreatedAt.IsZero() && (oldest.IsZero() || e.CreatedAt.Before(oldest)) {
			oldest = e.CreatedAt
		}
	}
	for _, pt := range parts {
		st.Ready += pt.ready.Val()
		st.Delayed += pt.delayed.Val()
		st.Dead += pt.dead.Val()
		if pt.pending.Err() == nil {
			st.InFlight += pt.pending.Val().Count
		}
		for _, m := range pt.head.Val() {
			b, _ := m.Values["b"].(string)
			seen(b)
		}
		for _, m := range pt.next.Val() {
			// "<n>:<len(id)>:<id><body>"
			if _, rest, ok := strings.Cut(m, ":"); ok {
				if l, body, ok := strings.Cut(rest, ":"); ok {
					if n, err := strconv.Atoi(l); err == nil && n <= len(body) {
						seen(body[n:])
					}
				}
			}
		}
	}
	if !oldest.IsZero() && now.After(oldest) {
		st.OldestAge = now.Sub(oldest)
	}
	return st, nil
}
