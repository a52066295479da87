// Package memstore is the embedded, in-memory bridge.Store: one process, no
// persistence. It is the default (demo, development, a single small
// instance); everything it holds is lost when the process stops, including
// outbox entries not yet delivered. Use the Redis store for anything that
// must survive a restart or run as several replicas.
package memstore

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// Options tune the store.
type Options struct {
	Clock        bridge.Clock
	SessionTTL   time.Duration // idle sessions are forgotten after this
	DedupeTTL    time.Duration // event ids are remembered this long
	ClaimTimeout time.Duration // an outbox delivery not settled by then is handed out again
}

// Store is the in-memory store. The zero value is not usable; call New.
type Store struct {
	opts Options

	mu       sync.Mutex
	sessions map[bridge.Key]*bridge.Session
	seen     map[string]time.Time // brand\x00event id → expiry
	tickets  map[string]ticket    // hash → ticket
	txns     map[string]txn       // hash → transaction
	outbox   map[string]*item     // entry id → item
	dead     map[string]DeadLetter
	logins   map[bridge.Key]login // bridge.LoginKey → latest recorded login
	wake     chan struct{}        // closed and replaced when an entry becomes available
	ops      int
}

type ticket struct {
	brand   string
	key     bridge.Key
	expires time.Time
}

type login struct {
	rec     bridge.LoginRecord
	expires time.Time
}

type txn struct {
	brand string
	txn   bridge.LoginTxn
}

type item struct {
	entry   bridge.OutboxEntry
	attempt int       // attempts handed out so far
	due     time.Time // not handed out before
	leased  bool
}

// DeadLetter is an outbox entry that will not be retried.
type DeadLetter struct {
	Entry    bridge.OutboxEntry
	Attempts int
	Reason   string
	At       time.Time
}

var _ bridge.Store = (*Store)(nil)

// New returns an empty store.
func New(opts Options) *Store {
	if opts.Clock == nil {
		opts.Clock = bridge.SystemClock{}
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 72 * time.Hour
	}
	if opts.DedupeTTL <= 0 {
		opts.DedupeTTL = 72 * time.Hour
	}
	if opts.ClaimTimeout <= 0 {
		opts.ClaimTimeout = time.Minute
	}
	return &Store{
		opts:     opts,
		sessions: map[bridge.Key]*bridge.Session{},
		seen:     map[string]time.Time{},
		tickets:  map[string]ticket{},
		txns:     map[string]txn{},
		outbox:   map[string]*item{},
		dead:     map[string]DeadLetter{},
		logins:   map[bridge.Key]login{},
		wake:     make(chan struct{}),
	}
}

// Ping always succeeds: the store is this process.
func (s *Store) Ping(context.Context) error { return nil }

// session returns the live session or nil; call with mu held.
func (s *Store) session(key bridge.Key, now time.Time) *bridge.Session {
	sess := s.sessions[key]
	if sess == nil || !now.Before(sess.UpdatedAt.Add(s.opts.SessionTTL)) {
		return nil
	}
	return sess
}

// seenBefore reports a duplicate event; call with mu held.
func (s *Store) seenBefore(brand, eventID string, now time.Time) bool {
	if eventID == "" {
		return false
	}
	exp, ok := s.seen[brand+"\x00"+eventID]
	return ok && now.Before(exp)
}

func (s *Store) markSeen(brand, eventID string, now time.Time) {
	if eventID != "" {
		s.seen[brand+"\x00"+eventID] = now.Add(s.opts.DedupeTTL)
	}
}

// observe creates or refreshes; call with mu held.
func (s *Store) observe(obs bridge.Observation) *bridge.Session {
	sess := s.session(obs.Key, obs.At)
	if sess == nil {
		sess = &bridge.Session{Key: obs.Key, Platform: obs.Platform, State: bridge.StateAnonymous, StartedAt: obs.At}
		s.sessions[obs.Key] = sess
	}
	if sess.Consumer == "" {
		sess.Consumer = obs.Consumer
	}
	if sess.Channel == "" {
		sess.Channel = obs.Channel
	}
	if sess.Platform == "" {
		sess.Platform = obs.Platform
	}
	sess.UpdatedAt = obs.At
	return sess
}

// Observe implements bridge.Store.
func (s *Store) Observe(_ context.Context, eventID string, obs bridge.Observation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(obs.At)
	if s.seenBefore(obs.Key.Brand, eventID, obs.At) {
		return bridge.ErrDuplicate
	}
	s.markSeen(obs.Key.Brand, eventID, obs.At)
	s.observe(obs)
	return nil
}

// Get implements bridge.Store.
func (s *Store) Get(_ context.Context, key bridge.Key) (bridge.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.session(key, s.opts.Clock.Now())
	if sess == nil {
		return bridge.Session{}, bridge.ErrNotFound
	}
	return sess.Clone(), nil
}

// IssueTicket implements bridge.Store.
func (s *Store) IssueTicket(_ context.Context, cmd bridge.IssueTicket) (bridge.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, err := s.issueTicket(cmd)
	if note, ok := cmd.RefusalNotes[err]; ok && cmd.EventID != "" {
		s.markSeen(cmd.Key.Brand, cmd.EventID, cmd.Now)
		s.enqueue([]bridge.OutboxEntry{note}, nil, cmd.Now)
	}
	return sess, err
}

// issueTicket is IssueTicket without the refusal notes; call with mu held.
func (s *Store) issueTicket(cmd bridge.IssueTicket) (bridge.Session, error) {
	s.sweep(cmd.Now)
	if s.seenBefore(cmd.Key.Brand, cmd.EventID, cmd.Now) {
		return bridge.Session{}, bridge.ErrDuplicate
	}
	// Check on a copy first: a refused command changes nothing.
	var cur bridge.Session
	if sess := s.session(cmd.Key, cmd.Now); sess != nil {
		cur = *sess
	} else if cmd.Obs == nil {
		return bridge.Session{}, bridge.ErrNotFound
	}
	switch cur.State {
	case bridge.StateClosed:
		return bridge.Session{}, bridge.ErrClosed
	case bridge.StateSteppedUp:
		return bridge.Session{}, bridge.ErrAlreadySteppedUp
	}
	if cmd.MaxLinks > 0 && cur.LinksIssued >= cmd.MaxLinks {
		return bridge.Session{}, bridge.ErrTooManyLinks
	}

	s.markSeen(cmd.Key.Brand, cmd.EventID, cmd.Now)
	var sess *bridge.Session
	if cmd.Obs != nil {
		sess = s.observe(*cmd.Obs)
	} else {
		sess = s.session(cmd.Key, cmd.Now)
		sess.UpdatedAt = cmd.Now
	}
	delete(s.tickets, sess.TicketHash)
	sess.State = bridge.StateLinkIssued
	sess.TicketHash = cmd.TicketHash
	sess.LinkExpiresAt = cmd.ExpiresAt
	sess.LinksIssued++
	clearCode(sess)
	s.tickets[cmd.TicketHash] = ticket{brand: cmd.Key.Brand, key: cmd.Key, expires: cmd.ExpiresAt}
	s.enqueue(cmd.Outbox, nil, cmd.Now)
	return sess.Clone(), nil
}

func clearCode(sess *bridge.Session) {
	sess.CodeHash = ""
	sess.CodeExpiresAt = time.Time{}
	sess.CodeAttempts = 0
	sess.Pending = nil
}

// validTicket finds a usable ticket; call with mu held.
func (s *Store) validTicket(brand, hash string, now time.Time) (*bridge.Session, error) {
	tk, ok := s.tickets[hash]
	if !ok || tk.brand != brand || !now.Before(tk.expires) {
		return nil, bridge.ErrTicketInvalid
	}
	sess := s.session(tk.key, now)
	if sess == nil || sess.TicketHash != hash || sess.State != bridge.StateLinkIssued {
		return nil, bridge.ErrTicketInvalid
	}
	return sess, nil
}

// PeekTicket implements bridge.Store.
func (s *Store) PeekTicket(_ context.Context, brand string, _ uint16, hash string, now time.Time) (bridge.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, err := s.validTicket(brand, hash, now)
	if err != nil {
		return bridge.Session{}, err
	}
	return sess.Clone(), nil
}

// BeginLogin implements bridge.Store.
func (s *Store) BeginLogin(_ context.Context, cmd bridge.BeginLogin) (bridge.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, err := s.validTicket(cmd.Brand, cmd.TicketHash, cmd.Now)
	if err != nil {
		return bridge.Session{}, err
	}
	delete(s.tickets, cmd.TicketHash)
	sess.TicketHash = ""
	sess.UpdatedAt = cmd.Now
	t := cmd.Txn
	t.Key = sess.Key
	s.txns[cmd.TxnHash] = txn{brand: cmd.Brand, txn: t}
	return sess.Clone(), nil
}

// TakeLogin implements bridge.Store.
func (s *Store) TakeLogin(_ context.Context, brand string, _ uint16, hash string, now time.Time) (bridge.LoginTxn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.txns[hash]
	if !ok || t.brand != brand {
		return bridge.LoginTxn{}, bridge.ErrLoginInvalid
	}
	delete(s.txns, hash)
	if !now.Before(t.txn.ExpiresAt) {
		return bridge.LoginTxn{}, bridge.ErrLoginInvalid
	}
	return t.txn, nil
}

// VerifyLogin implements bridge.Store.
func (s *Store) VerifyLogin(_ context.Context, cmd bridge.VerifyLogin) (bridge.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.session(cmd.Key, cmd.Now)
	if sess == nil {
		return bridge.Session{}, bridge.ErrNotFound
	}
	switch sess.State {
	case bridge.StateClosed:
		return bridge.Session{}, bridge.ErrClosed
	case bridge.StateSteppedUp:
		if sess.Identity.SameSubject(&cmd.Identity) {
			return bridge.Session{}, bridge.ErrAlreadySteppedUp
		}
		return bridge.Session{}, bridge.ErrBoundElsewhere
	}
	id := cmd.Identity
	sess.UpdatedAt = cmd.Now
	if cmd.CodeHash != "" {
		sess.State = bridge.StateLoginVerified
		sess.CodeHash = cmd.CodeHash
		sess.CodeExpiresAt = cmd.CodeExpiresAt
		sess.CodeAttempts = 0
		sess.Pending = id.Clone()
		return sess.Clone(), nil
	}
	s.stepUp(sess, &id, cmd.Now, cmd.Outbox)
	return sess.Clone(), nil
}

// stepUp binds the identity and writes the outbox; call with mu held.
func (s *Store) stepUp(sess *bridge.Session, id *bridge.Identity, now time.Time, outbox []bridge.OutboxEntry) {
	clearCode(sess)
	delete(s.tickets, sess.TicketHash)
	sess.TicketHash = ""
	sess.State = bridge.StateSteppedUp
	sess.Identity = id.Clone()
	sess.SteppedUpAt = now
	s.enqueue(outbox, id, now)
}

// ConfirmCode implements bridge.Store.
func (s *Store) ConfirmCode(_ context.Context, cmd bridge.ConfirmCode) (bridge.CodeResult, bridge.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res, sess, err := s.confirmCode(cmd)
	if e, ok := cmd.Feedback[res]; ok && err == nil {
		s.enqueue([]bridge.OutboxEntry{e}, nil, cmd.Obs.At)
	}
	return res, sess, err
}

// confirmCode is ConfirmCode without the feedback; call with mu held.
func (s *Store) confirmCode(cmd bridge.ConfirmCode) (bridge.CodeResult, bridge.Session, error) {
	now := cmd.Obs.At
	s.sweep(now)
	if s.seenBefore(cmd.Obs.Key.Brand, cmd.EventID, now) {
		return "", bridge.Session{}, bridge.ErrDuplicate
	}
	s.markSeen(cmd.Obs.Key.Brand, cmd.EventID, now)
	sess := s.observe(cmd.Obs)
	if sess.State != bridge.StateLoginVerified {
		return bridge.CodeNoPending, sess.Clone(), nil
	}
	if !now.Before(sess.CodeExpiresAt) {
		clearCode(sess)
		sess.State = bridge.StateAnonymous
		return bridge.CodeExpired, sess.Clone(), nil
	}
	if bridge.EqualSecret(cmd.CodeHash, sess.CodeHash) {
		id := sess.Pending
		s.stepUp(sess, id, now, cmd.Outbox)
		return bridge.CodeMatched, sess.Clone(), nil
	}
	sess.CodeAttempts++
	if sess.CodeAttempts >= cmd.MaxAttempts {
		clearCode(sess)
		sess.State = bridge.StateAnonymous
		return bridge.CodeLocked, sess.Clone(), nil
	}
	return bridge.CodeMismatch, sess.Clone(), nil
}

// Close implements bridge.Store.
func (s *Store) Close(_ context.Context, eventID string, obs bridge.Observation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(obs.At)
	if s.seenBefore(obs.Key.Brand, eventID, obs.At) {
		return bridge.ErrDuplicate
	}
	s.markSeen(obs.Key.Brand, eventID, obs.At)
	sess := s.observe(obs)
	clearCode(sess)
	delete(s.tickets, sess.TicketHash)
	sess.TicketHash = ""
	sess.State = bridge.StateClosed
	return nil
}

// enqueue adds outbox entries; step-up entries get the identity. Call with mu held.
func (s *Store) enqueue(entries []bridge.OutboxEntry, id *bridge.Identity, now time.Time) {
	if len(entries) == 0 {
		return
	}
	for _, e := range entries {
		if id != nil {
			e.Identity = id.Clone()
		}
		s.outbox[e.ID] = &item{entry: e, due: now}
	}
	close(s.wake)
	s.wake = make(chan struct{})
}

// Claim implements bridge.Outbox.
func (s *Store) Claim(ctx context.Context, _ string, max int, wait time.Duration) ([]bridge.Delivery, error) {
	deadline := time.Now().Add(wait)
	for {
		s.mu.Lock()
		now := s.opts.Clock.Now()
		var due []*item
		for _, it := range s.outbox {
			if !now.Before(it.due) {
				due = append(due, it)
			}
		}
		sort.Slice(due, func(i, j int) bool {
			if !due[i].due.Equal(due[j].due) {
				return due[i].due.Before(due[j].due)
			}
			return due[i].entry.ID < due[j].entry.ID
		})
		if len(due) > max {
			due = due[:max]
		}
		out := make([]bridge.Delivery, 0, len(due))
		for _, it := range due {
			it.attempt++
			it.leased = true
			it.due = now.Add(s.opts.ClaimTimeout)
			e := it.entry
			e.Identity = e.Identity.Clone()
			out = append(out, bridge.Delivery{Entry: e, Attempt: it.attempt, Handle: e.ID})
		}
		wake := s.wake
		s.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, ctx.Err()
		}
		// Wake on a new entry, or poll: retries become due by the clock alone.
		timer := time.NewTimer(min(left, 250*time.Millisecond))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// Ack implements bridge.Outbox.
func (s *Store) Ack(_ context.Context, d bridge.Delivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.outbox, d.Handle)
	return nil
}

// current returns the item d still holds: not settled, and not handed out
// again since (as the Redis store, a stale delivery changes nothing). Call
// with mu held.
func (s *Store) current(d bridge.Delivery) (*item, bool) {
	it, ok := s.outbox[d.Handle]
	if !ok || !it.leased || it.attempt != d.Attempt {
		return nil, false
	}
	return it, true
}

// Retry implements bridge.Outbox. A stale delivery changes nothing.
func (s *Store) Retry(_ context.Context, d bridge.Delivery, at time.Time, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, ok := s.current(d); ok {
		it.leased = false
		it.due = at
	}
	return nil
}

// Renew implements bridge.Renewer: the delivery is still the caller's
// (not settled, not handed out again) and its lease starts over.
func (s *Store) Renew(_ context.Context, d bridge.Delivery) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.current(d)
	if ok {
		it.due = s.opts.Clock.Now().Add(s.opts.ClaimTimeout)
	}
	return ok, nil
}

// OutboxStats is the outbox at a glance (for metrics).
type OutboxStats struct {
	Ready     int64 // due now or in flight
	InFlight  int64 // of Ready, handed to a worker
	Delayed   int64 // waiting for a retry
	Dead      int64
	OldestAge time.Duration // age of the oldest entry not yet delivered
}

// OutboxStats counts the outbox.
func (s *Store) OutboxStats(context.Context) (OutboxStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Clock.Now()
	var st OutboxStats
	var oldest time.Time
	for _, it := range s.outbox {
		switch {
		case it.leased:
			st.Ready++
			st.InFlight++
		case it.due.After(now):
			st.Delayed++
		default:
			st.Ready++
		}
		if c := it.entry.CreatedAt; !c.IsZero() && (oldest.IsZero() || c.Before(oldest)) {
			oldest = c
		}
	}
	st.Dead = int64(len(s.dead))
	if !oldest.IsZero() && now.After(oldest) {
		st.OldestAge = now.Sub(oldest)
	}
	return st, nil
}

// Bury implements bridge.Outbox. A stale delivery changes nothing.
func (s *Store) Bury(_ context.Context, d bridge.Delivery, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.current(d)
	if !ok {
		return nil
	}
	delete(s.outbox, d.Handle)
	if len(s.dead) >= MaxDeadLetters {
		// Bounded like the Redis store's dead letters: the oldest goes.
		var oldest string
		for id, dl := range s.dead {
			if oldest == "" || dl.At.Before(s.dead[oldest].At) {
				oldest = id
			}
		}
		delete(s.dead, oldest)
	}
	s.dead[d.Handle] = DeadLetter{Entry: it.entry, Attempts: it.attempt, Reason: reason, At: s.opts.Clock.Now()}
	return nil
}

// MaxDeadLetters caps the dead letters kept in memory.
const MaxDeadLetters = 10000

// DeadLetters lists buried entries, oldest first.
func (s *Store) DeadLetters() []DeadLetter {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]DeadLetter, 0, len(s.dead))
	for _, d := range s.dead {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// sweep drops expired state now and then so memory stays bounded. Call with mu held.
func (s *Store) sweep(now time.Time) {
	s.ops++
	if s.ops%1024 != 0 {
		return
	}
	for k, sess := range s.sessions {
		if !now.Before(sess.UpdatedAt.Add(s.opts.SessionTTL)) {
			delete(s.sessions, k)
		}
	}
	for k, exp := range s.seen {
		if !now.Before(exp) {
			delete(s.seen, k)
		}
	}
	for k, t := range s.tickets {
		if !now.Before(t.expires) {
			delete(s.tickets, k)
		}
	}
	for k, t := range s.txns {
		if !now.Before(t.txn.ExpiresAt) {
			delete(s.txns, k)
		}
	}
	for k, l := range s.logins {
		if !now.Before(l.expires) {
			delete(s.logins, k)
		}
	}
}

// RecordLogin implements bridge.LoginStore.
func (s *Store) RecordLogin(_ context.Context, rec bridge.LoginRecord, expiresAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(rec.At)
	k := bridge.LoginKey(rec.Brand, rec.Identity.Subject)
	if old, ok := s.logins[k]; ok && rec.At.Before(old.expires) && supersedes(old.rec, rec) {
		return bridge.ErrLoginSuperseded
	}
	rec.Identity = *rec.Identity.Clone()
	s.logins[k] = login{rec: rec, expires: expiresAt}
	return nil
}

// supersedes reports whether the live record old wins over rec.
func supersedes(old, rec bridge.LoginRecord) bool {
	if old.Verified != rec.Verified {
		return old.Verified
	}
	return !old.At.Before(rec.At)
}

// LatestLogin implements bridge.LoginStore.
func (s *Store) LatestLogin(_ context.Context, brand, subject string, now time.Time) (bridge.LoginRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.logins[bridge.LoginKey(brand, subject)]
	if !ok || !now.Before(l.expires) {
		return bridge.LoginRecord{}, bridge.ErrNotFound
	}
	rec := l.rec
	rec.Identity = *l.rec.Identity.Clone()
	return rec, nil
}

// NativeStepUp implements bridge.LoginStore.
func (s *Store) NativeStepUp(_ context.Context, cmd bridge.NativeStepUp) (bridge.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := cmd.Obs.At
	s.sweep(now)
	if s.seenBefore(cmd.Obs.Key.Brand, cmd.EventID, now) {
		return bridge.Session{}, bridge.ErrDuplicate
	}
	sess := s.session(cmd.Obs.Key, now)
	if sess == nil {
		return bridge.Session{}, bridge.ErrNotFound
	}
	switch sess.State {
	case bridge.StateClosed:
		return bridge.Session{}, bridge.ErrClosed
	case bridge.StateSteppedUp:
		if sess.Identity.SameSubject(&cmd.Identity) {
			return bridge.Session{}, bridge.ErrAlreadySteppedUp
		}
		if cmd.BoundElsewhereNote != nil && cmd.EventID != "" {
			s.markSeen(cmd.Obs.Key.Brand, cmd.EventID, now)
			s.enqueue([]bridge.OutboxEntry{*cmd.BoundElsewhereNote}, nil, now)
		}
		return bridge.Session{}, bridge.ErrBoundElsewhere
	}
	s.markSeen(cmd.Obs.Key.Brand, cmd.EventID, now)
	sess.UpdatedAt = now
	sess.AuthConsumer = cmd.Obs.Consumer
	id := cmd.Identity
	s.stepUp(sess, &id, now, cmd.Outbox)
	return sess.Clone(), nil
}
