package bridge

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"text/template"
	"time"
)

// DeliveryPolicy tunes the outbox workers.
type DeliveryPolicy struct {
	Workers     int
	MaxAttempts int
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
	CallTimeout time.Duration
	// Lease is the store's claim timeout (0: unknown). A worker claims no
	// more entries at once than it can attempt within one lease, even if
	// every call times out; the rest would be handed to other workers
	// before their turn, each such hand-over counting as an attempt.
	Lease time.Duration
}

// maxClaim bounds one claim whatever the lease.
const maxClaim = 16

// claimBatch is how many entries a worker claims at once.
func (p DeliveryPolicy) claimBatch() int {
	if p.Lease <= 0 || p.CallTimeout <= 0 {
		return maxClaim
	}
	return max(1, min(maxClaim, int(p.Lease/p.CallTimeout)-1))
}

// freshClaim reports whether d was claimed so recently that the check
// before its attempt (Renewer) can be skipped: the store vouched for it at
// the claim and most of its lease is left. It saves a store round trip per
// delivery in the common case, where a step-up's effects are claimed
// together and attempted at once; entries that waited behind slow calls,
// or a worker that stalled, are checked as before.
func (p DeliveryPolicy) freshClaim(d Delivery, now time.Time) bool {
	if d.ClaimedAt.IsZero() || p.Lease <= 0 {
		return false
	}
	age := now.Sub(d.ClaimedAt)
	return age >= 0 && age < p.Lease/4
}

// Backoff is the wait before attempt+1: exponential from MinBackoff, capped
// at MaxBackoff, with full jitter over its upper half so that a platform
// coming back is not hit by every entry at once.
func (p DeliveryPolicy) Backoff(attempt int) time.Duration {
	d := p.MinBackoff
	for i := 1; i < attempt && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	half := d / 2
	return half + rand.N(half+1)
}

// Renewer is an optional Outbox extension, checked before every attempt:
// Renew reports whether the delivery is still the caller's to make (not
// completed, not buried, not handed to another worker after its lease ran
// out) and, if so, restarts its lease. Without it, an entry that waited in a
// claimed batch behind slow calls could outlive its lease and be delivered
// by two workers; an entry completed by a worker whose lease had run out
// could be delivered again.
type Renewer interface {
	Renew(ctx context.Context, d Delivery) (bool, error)
}

// AttemptRecorder is an optional Recorder extension: how many attempts an
// entry took when it was settled (outcome delivered or dead_letter).
type AttemptRecorder interface {
	DeliveryAttempts(brand, platform string, effect Effect, outcome string, attempts int)
}

// RunWorkers consumes the outbox until ctx ends. Every replica runs them;
// the store hands each entry to one worker at a time. When ctx ends, calls
// in flight are finished and settled (within CallTimeout and a short
// settle time) rather than aborted, and claimed entries not yet attempted
// are handed back for another worker, so that a deploy neither delivers
// twice nor holds entries for a whole lease.
func (s *Service) RunWorkers(ctx context.Context, p DeliveryPolicy, name string) {
	var wg sync.WaitGroup
	for i := range max(p.Workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work(ctx, p, fmt.Sprintf("%s-%d", name, i))
		}()
	}
	wg.Wait()
}

func (s *Service) work(ctx context.Context, p DeliveryPolicy, worker string) {
	for ctx.Err() == nil {
		ds, err := s.store.Claim(ctx, worker, p.claimBatch(), time.Second)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("outbox claim failed", "worker", worker, "error", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		s.deliverBatch(ctx, p, ds)
	}
}

// batchParallel is how many of its claimed entries a worker attempts at
// once. A step-up's effects are claimed together; attempting them one
// after the other put three platform calls and their settling in a row
// between the login and the agent seeing it. Effects carry no order
// (retries reorder them anyway).
const batchParallel = 4

// deliverBatch attempts a claim's deliveries, up to batchParallel at a
// time. Once ctx ends, the deliveries not yet begun are handed back.
func (s *Service) deliverBatch(ctx context.Context, p DeliveryPolicy, ds []Delivery) {
	var (
		mu      sync.Mutex
		next    int
		unbegun []Delivery
		wg      sync.WaitGroup
	)
	for range min(len(ds), batchParallel) {
		wg.Go(func() {
			for {
				mu.Lock()
				if next == len(ds) {
					mu.Unlock()
					return
				}
				d := ds[next]
				next++
				if ctx.Err() != nil {
					unbegun = append(unbegun, d)
					mu.Unlock()
					continue
				}
				mu.Unlock()
				s.deliverOne(ctx, p, d)
			}
		})
	}
	wg.Wait()
	if len(unbegun) > 0 {
		s.release(ctx, unbegun)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// release hands claimed, unattempted deliveries back at shutdown (as a
// retry due now: the store counts it as an attempt).
func (s *Service) release(ctx context.Context, ds []Delivery) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	for _, d := range ds {
		if err := s.store.Retry(rctx, d, s.clock.Now(), "released at shutdown"); err != nil {
			s.log.Warn("outbox release at shutdown failed; the entry waits for its lease", "entry", d.Entry.ID, "error", err)
		}
	}
}

// deliverOne makes one attempt and settles the delivery in the store. Once
// begun, an attempt outlives ctx (bounded by CallTimeout): aborting a call
// the platform may already have acted on would only make a duplicate.
func (s *Service) deliverOne(ctx context.Context, p DeliveryPolicy, d Delivery) {
	e := d.Entry
	log := s.log.With("brand", e.Key.Brand, "conversation", e.Key.Conversation, "effect", string(e.Effect), "entry", e.ID, "attempt", d.Attempt)
	ctx = context.WithoutCancel(ctx)
	if r, ok := s.store.(Renewer); ok && !p.freshClaim(d, s.clock.Now()) {
		rctx, cancel := context.WithTimeout(ctx, settleTimeout)
		mine, err := r.Renew(rctx, d)
		cancel()
		switch {
		case err != nil:
			// Unsettled: the lease runs out and the entry is handed out again.
			log.Warn("outbox lease renewal failed; not attempting", "error", err)
			return
		case !mine:
			s.rec.Delivery(e.Key.Brand, e.Platform, e.Effect, "skipped")
			log.Info("outbox delivery skipped: completed, buried or taken over by another worker")
			return
		}
	}
	callCtx, cancel := context.WithTimeout(ctx, p.CallTimeout)
	err := s.Deliver(callCtx, e)
	cancel()
	// Settle with a context that outlives shutdown's cancel, briefly, so a
	// finished call is not delivered again needlessly.
	settle, cancelSettle := context.WithTimeout(ctx, settleTimeout)
	defer cancelSettle()
	var serr error
	switch {
	case err == nil:
		serr = retryUnavailable(settle, func(ctx context.Context) error { return s.store.Ack(ctx, d) })
		s.rec.Delivery(e.Key.Brand, e.Platform, e.Effect, "delivered")
		s.recordAttempts(e, "delivered", d.Attempt)
		log.Info("platform call delivered")
	case IsPermanent(err) || d.Attempt >= p.MaxAttempts:
		serr = retryUnavailable(settle, func(ctx context.Context) error { return s.store.Bury(ctx, d, err.Error()) })
		s.rec.Delivery(e.Key.Brand, e.Platform, e.Effect, "dead_letter")
		s.recordAttempts(e, "dead_letter", d.Attempt)
		log.Error("platform call failed for good; moved to dead letters", "error", err, "permanent", IsPermanent(err))
	default:
		wait := p.Backoff(d.Attempt)
		// A platform that says when to come back (429/503 Retry-After) is
		// believed, up to MaxBackoff.
		var ra interface{ RetryAfterDelay() time.Duration }
		if errors.As(err, &ra) {
			wait = max(wait, min(ra.RetryAfterDelay(), p.MaxBackoff))
		}
		due := s.clock.Now().Add(wait)
		serr = retryUnavailable(settle, func(ctx context.Context) error { return s.store.Retry(ctx, d, due, err.Error()) })
		s.rec.Delivery(e.Key.Brand, e.Platform, e.Effect, "retry")
		log.Warn("platform call failed; will retry", "error", err, "in", wait.String())
	}
	if serr != nil {
		// Unsettled: the lease runs out and the entry is handed out again.
		log.Warn("outbox settle failed", "error", serr)
	}
}

func (s *Service) recordAttempts(e OutboxEntry, outcome string, attempts int) {
	if r, ok := s.rec.(AttemptRecorder); ok {
		r.DeliveryAttempts(e.Key.Brand, e.Platform, e.Effect, outcome, attempts)
	}
}

// settleTimeout bounds the settling of one attempt, retries included.
const settleTimeout = 5 * time.Second

// retryUnavailable runs a settle operation again while the store is
// unreachable, until ctx ends. A store blip right after a platform call
// would otherwise leave a delivered entry unsettled, to be delivered again
// when its lease runs out. Ack, Retry and Bury are safe to repeat: a
// repeat of one that took effect finds the delivery settled and changes
// nothing.
func retryUnavailable(ctx context.Context, op func(context.Context) error) error {
	for {
		err := op(ctx)
		if err == nil || !errors.Is(err, ErrUnavailable) {
			return err
		}
		sleep(ctx, 200*time.Millisecond)
		if ctx.Err() != nil {
			return err
		}
	}
}

// Deliver renders what only exists at delivery time (the agent note needs
// the identity the store attached) and calls the platform.
func (s *Service) Deliver(ctx context.Context, e OutboxEntry) error {
	if !e.ExpiresAt.IsZero() && !s.clock.Now().Before(e.ExpiresAt) {
		return Permanent(ErrEntryExpired)
	}
	b, err := s.Brand(e.Key.Brand)
	if err != nil {
		return Permanent(fmt.Errorf("brand %q is no longer configured", e.Key.Brand))
	}
	p, ok := b.Platforms[e.Platform]
	if !ok {
		return Permanent(fmt.Errorf("platform %q is no longer configured for brand %q", e.Platform, e.Key.Brand))
	}
	if e.Effect == EffectNotifyAgents && e.Text == "" {
		if e.Identity == nil {
			return Permanent(errors.New("agent note without identity"))
		}
		e.Text, err = RenderNote(b.Policy.NotifyMessage, e.Identity)
		if err != nil {
			return Permanent(err)
		}
	}
	return p.Deliver(ctx, e)
}

// NoteData is what the agent-note template sees: the identity plus
// AMRText ("pwd, otp") and a VerifiedAt formatted for people.
type NoteData struct {
	*Identity
	AMRText    string
	VerifiedAt string
}

// RenderNote renders the agent note for an identity.
func RenderNote(t *template.Template, id *Identity) (string, error) {
	var b strings.Builder
	d := NoteData{Identity: id, AMRText: strings.Join(id.AMR, ", "), VerifiedAt: id.VerifiedAt.UTC().Format("2006-01-02 15:04 UTC")}
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("render agent note: %w", err)
	}
	return b.String(), nil
}
