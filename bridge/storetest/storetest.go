// Package storetest is the contract every bridge.Store passes: the memory
// store, standalone Redis and Redis Cluster run the same tests.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// Clock is a settable clock shared by a test and the store under test.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts at a fixed instant.
func NewClock() *Clock {
	return &Clock{now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// Options are what the suite needs to know about the store's configuration.
// Factories must build stores with these values.
type Options struct {
	SessionTTL   time.Duration
	DedupeTTL    time.Duration
	ClaimTimeout time.Duration // outbox visibility timeout
}

// DefaultOptions are the values the suite builds stores with.
// ClaimTimeout is short because a store may measure leases in real time
// (Redis XAUTOCLAIM idle time) rather than on the injected clock.
var DefaultOptions = Options{SessionTTL: 72 * time.Hour, DedupeTTL: 72 * time.Hour, ClaimTimeout: 2 * time.Second}

// Factory builds an empty store using clock for "now" (outbox due times,
// visibility timeouts). Each call must return a store isolated from the
// others (e.g. its own key prefix).
type Factory func(t *testing.T, clock bridge.Clock, opts Options) bridge.Store

var seq atomic.Int64

func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), seq.Add(1))
}

type fixture struct {
	t     *testing.T
	ctx   context.Context
	clock *Clock
	s     bridge.Store
	key   bridge.Key
}

func newFixture(t *testing.T, f Factory) *fixture {
	clock := NewClock()
	return &fixture{
		t: t, ctx: context.Background(), clock: clock,
		s:   f(t, clock, DefaultOptions),
		key: bridge.Key{Brand: "acme", Conversation: uniq("conv")},
	}
}

func (f *fixture) obs() bridge.Observation {
	return bridge.Observation{Key: f.key, Platform: "standard", Consumer: "anon-1", Channel: "web", At: f.clock.Now()}
}

func (f *fixture) entry(effect bridge.Effect) bridge.OutboxEntry {
	return bridge.OutboxEntry{ID: uniq("ob"), Effect: effect, Key: f.key, Platform: "standard", Consumer: "anon-1", Text: "hello 🌍", CreatedAt: f.clock.Now()}
}

// issue records a link and returns its token.
func (f *fixture) issue(outbox ...bridge.OutboxEntry) bridge.Token {
	f.t.Helper()
	tok := bridge.NewToken(f.key)
	obs := f.obs()
	_, err := f.s.IssueTicket(f.ctx, bridge.IssueTicket{Obs: &obs, Key: f.key, TicketHash: tok.Hash(), Now: f.clock.Now(), ExpiresAt: f.clock.Now().Add(10 * time.Minute), MaxLinks: 5, Outbox: outbox})
	require.NoError(f.t, err)
	return tok
}

func (f *fixture) begin(tok bridge.Token) (bridge.Token, bridge.LoginTxn) {
	f.t.Helper()
	txnTok := bridge.NewToken(f.key)
	txn := bridge.LoginTxn{State: "st", Nonce: "nn", Verifier: "vv", CreatedAt: f.clock.Now(), ExpiresAt: f.clock.Now().Add(10 * time.Minute)}
	_, err := f.s.BeginLogin(f.ctx, bridge.BeginLogin{Brand: f.key.Brand, Partition: tok.Partition, TicketHash: tok.Hash(), TxnHash: txnTok.Hash(), Txn: txn, Now: f.clock.Now()})
	require.NoError(f.t, err)
	return txnTok, txn
}

func identity(sub string) bridge.Identity {
	return bridge.Identity{Provider: "Acme", Issuer: "https://idp.example", Subject: sub, Name: "Jane Ö", AMR: []string{"pwd", "otp"}, VerifiedAt: time.Date(2026, 11, 25, 10, 1, 0, 0, time.UTC), Claims: map[string]string{"customer_id": "C-1"}}
}

func (f *fixture) pendingCode(code string) {
	f.t.Helper()
	f.issue()
	_, err := f.s.VerifyLogin(f.ctx, bridge.VerifyLogin{Key: f.key, Identity: identity("u-1"), Now: f.clock.Now(), CodeHash: bridge.CodeHash(f.key, code), CodeExpiresAt: f.clock.Now().Add(5 * time.Minute)})
	require.NoError(f.t, err)
}

func (f *fixture) confirm(eventID, code string, outbox ...bridge.OutboxEntry) (bridge.CodeResult, bridge.Session, error) {
	return f.s.ConfirmCode(f.ctx, bridge.ConfirmCode{EventID: eventID, Obs: f.obs(), CodeHash: bridge.CodeHash(f.key, code), MaxAttempts: 3, Outbox: outbox})
}

func (f *fixture) get() bridge.Session {
	f.t.Helper()
	s, err := f.s.Get(f.ctx, f.key)
	require.NoError(f.t, err)
	return s
}

// claimAll drains what is due.
func (f *fixture) claimAll() []bridge.Delivery {
	f.t.Helper()
	ds, err := f.s.Claim(f.ctx, "w1", 100, 0)
	require.NoError(f.t, err)
	return ds
}

// Run runs the whole contract.
func Run(t *testing.T, factory Factory) {
	t.Run("Observe", func(t *testing.T) { testObserve(t, factory) })
	t.Run("Tickets", func(t *testing.T) { testTickets(t, factory) })
	t.Run("Login", func(t *testing.T) { testLogin(t, factory) })
	t.Run("ConfirmCode", func(t *testing.T) { testConfirmCode(t, factory) })
	t.Run("BindingNone", func(t *testing.T) { testBindingNone(t, factory) })
	t.Run("Close", func(t *testing.T) { testClose(t, factory) })
	t.Run("Outbox", func(t *testing.T) { testOutbox(t, factory) })
	t.Run("Races", func(t *testing.T) { testRaces(t, factory) })
	t.Run("Logins", func(t *testing.T) { testLogins(t, factory) })
	t.Run("NativeStepUp", func(t *testing.T) { testNativeStepUp(t, factory) })
	t.Run("CodeFeedback", func(t *testing.T) { testCodeFeedback(t, factory) })
	t.Run("RefusalNotes", func(t *testing.T) { testRefusalNotes(t, factory) })
	t.Run("BindingEdges", func(t *testing.T) { testBindingEdges(t, factory) })
}

func testObserve(t *testing.T, factory Factory) {
	f := newFixture(t, factory)
	_, err := f.s.Get(f.ctx, f.key)
	require.ErrorIs(t, err, bridge.ErrNotFound)

	require.NoError(t, f.s.Observe(f.ctx, "ev-1", f.obs()))
	s := f.get()
	assert.Equal(t, bridge.StateAnonymous, s.State)
	assert.Equal(t, f.key, s.Key)
	assert.Equal(t, "standard", s.Platform)
	assert.Equal(t, "anon-1", s.Consumer)
	assert.Equal(t, "web", s.Channel)
	assert.True(t, s.StartedAt.Equal(f.clock.Now()))

	// The same event again changes nothing.
	f.clock.Advance(time.Minute)
	err = f.s.Observe(f.ctx, "ev-1", f.obs())
	require.ErrorIs(t, err, bridge.ErrDuplicate)
	got := f.get()
	assert.True(t, got.UpdatedAt.Equal(s.UpdatedAt), "duplicate must not touch the session")

	// A new event refreshes but keeps the start time and consumer.
	o := f.obs()
	o.Consumer = ""
	require.NoError(t, f.s.Observe(f.ctx, "ev-2", o))
	s2 := f.get()
	assert.True(t, s2.StartedAt.Equal(s.StartedAt))
	assert.True(t, s2.UpdatedAt.Equal(f.clock.Now()))
	assert.Equal(t, "anon-1", s2.Consumer)

	// No event id: no dedupe.
	err = f.s.Observe(f.ctx, "", f.obs())
	require.NoError(t, err)
	err = f.s.Observe(f.ctx, "", f.obs())
	require.NoError(t, err)

	// Event ids are per brand.
	other := f.obs()
	other.Key = bridge.Key{Brand: "other", Conversation: f.key.Conversation}
	err = f.s.Observe(f.ctx, "ev-1", other)
	require.NoError(t, err)

	require.NoError(t, f.s.Ping(f.ctx))

	// An event id counts as seen for DedupeTTL, even while later events
	// keep the conversation (and its other ids) alive; then it is new
	// again, and seen again from then on.
	opts := DefaultOptions
	opts.DedupeTTL = time.Hour
	g := newFixture(t, factory)
	g.s = factory(t, g.clock, opts)
	require.NoError(t, g.s.Observe(g.ctx, "ev-1", g.obs()))
	g.clock.Advance(40 * time.Minute)
	require.NoError(t, g.s.Observe(g.ctx, "ev-2", g.obs()))
	g.clock.Advance(30 * time.Minute)
	require.ErrorIs(t, g.s.Observe(g.ctx, "ev-2", g.obs()), bridge.ErrDuplicate)
	require.NoError(t, g.s.Observe(g.ctx, "ev-1", g.obs()), "seen 70 minutes ago, dedupe TTL 1 h")
	assert.True(t, g.get().UpdatedAt.Equal(g.clock.Now()))
	require.ErrorIs(t, g.s.Observe(g.ctx, "ev-1", g.obs()), bridge.ErrDuplicate)
}

func testTickets(t *testing.T, factory Factory) {
	t.Run("issue and peek", func(t *testing.T) {
		f := newFixture(t, factory)
		tok := f.issue(f.entry(bridge.EffectPostMessage))
		s := f.get()
		assert.Equal(t, bridge.StateLinkIssued, s.State)
		assert.Equal(t, 1, s.LinksIssued)
		assert.Equal(t, tok.Hash(), s.TicketHash)

		p, err := f.s.PeekTicket(f.ctx, f.key.Brand, tok.Partition, tok.Hash(), f.clock.Now())
		require.NoError(t, err)
		assert.Equal(t, f.key, p.Key)
		// Peek is read-only: twice is fine.
		_, err = f.s.PeekTicket(f.ctx, f.key.Brand, tok.Partition, tok.Hash(), f.clock.Now())
		require.NoError(t, err)

		ds := f.claimAll()
		require.Len(t, ds, 1)
		assert.Equal(t, bridge.EffectPostMessage, ds[0].Entry.Effect)
		assert.Equal(t, "hello 🌍", ds[0].Entry.Text)
		assert.Equal(t, 1, ds[0].Attempt)
	})
	t.Run("other brand", func(t *testing.T) {
		f := newFixture(t, factory)
		tok := f.issue()
		_, err := f.s.PeekTicket(f.ctx, "other", tok.Partition, tok.Hash(), f.clock.Now())
		require.ErrorIs(t, err, bridge.ErrTicketInvalid)
		_, err = f.s.BeginLogin(f.ctx, bridge.BeginLogin{Brand: "other", Partition: tok.Partition, TicketHash: tok.Hash(), TxnHash: "x", Now: f.clock.Now()})
		require.ErrorIs(t, err, bridge.ErrTicketInvalid)
		// Still usable by its own brand.
		_, err = f.s.PeekTicket(f.ctx, f.key.Brand, tok.Partition, tok.Hash(), f.clock.Now())
		require.NoError(t, err)
	})
	t.Run("unknown and expired", func(t *testing.T) {
		f := newFixture(t, factory)
		tok := f.issue()
		unknown := bridge.NewToken(f.key)
		_, err := f.s.PeekTicket(f.ctx, f.key.Brand, unknown.Partition, unknown.Hash(), f.clock.Now())
		require.ErrorIs(t, err, bridge.ErrTicketInvalid)
		f.clock.Advance(10*time.Minute + time.Second)
		_, err = f.s.PeekTicket(f.ctx, f.key.Brand, tok.Partition, tok.Hash(), f.clock.Now())
		require.ErrorIs(t, err, bridge.ErrTicketInvalid)
		assert.Equal(t, bridge.StateExpired, func() bridge.State { s := f.get(); return s.Effective(f.clock.Now()) }())
	})
	t.Run("newer link replaces older", func(t *testing.T) {
		f := newFixture(t, factory)
		old := f.issue()
		cur := f.issue()
		_, err := f.s.PeekTicket(f.ctx, f.key.Brand, old.Partition, old.Hash(), f.clock.Now())
		require.ErrorIs(t, err, bridge.ErrTicketInvalid)
		_, err = f.s.PeekTicket(f.ctx, f.key.Brand, cur.Partition, cur.Hash(), f.clock.Now())
		require.NoError(t, err)
		assert.Equal(t, 2, f.get().LinksIssued)
	})
	t.Run("limit", func(t *testing.T) {
		f := newFixture(t, factory)
		for range 5 {
			f.issue()
		}
		before := f.get()
		tok := bridge.NewToken(f.key)
		_, err := f.s.IssueTicket(f.ctx, bridge.IssueTicket{Key: f.key, TicketHash: tok.Hash(), Now: f.clock.Now(), ExpiresAt: f.clock.Now().Add(time.Minute), MaxLinks: 5, Outbox: []bridge.OutboxEntry{f.entry(bridge.EffectPostMessage)}})
		require.ErrorIs(t, err, bridge.ErrTooManyLinks)
		assert.Equal(t, before, f.get())
		assert.Empty(t, f.claimAll(), "a refused command writes no outbox entry")
	})
	t.Run("unknown conversation without observation", func(t *testing.T) {
		f := newFixture(t, factory)
		tok := bridge.NewToken(f.key)
		_, err := f.s.IssueTicket(f.ctx, bridge.IssueTicket{Key: f.key, TicketHash: tok.Hash(), Now: f.clock.Now(), ExpiresAt: f.clock.Now().Add(time.Minute)})
		require.ErrorIs(t, err, bridge.ErrNotFound)
		_, err = f.s.Get(f.ctx, f.key)
		require.ErrorIs(t, err, bridge.ErrNotFound)
	})
	t.Run("dedupe by event", func(t *testing.T) {
		f := newFixture(t, factory)
		obs := f.obs()
		cmd := bridge.IssueTicket{EventID: "agent-cmd-1", Obs: &obs, Key: f.key, TicketHash: bridge.NewToken(f.key).Hash(), Now: f.clock.Now(), ExpiresAt: f.clock.Now().Add(time.Minute), Outbox: []bridge.OutboxEntry{f.entry(bridge.EffectPostMessage)}}
		_, err := f.s.IssueTicket(f.ctx, cmd)
		require.NoError(t, err)
		cmd.TicketHash = bridge.NewToken(f.key).Hash()
		cmd.Outbox = []bridge.OutboxEntry{f.entry(bridge.EffectPostMessage)}
		_, err = f.s.IssueTicket(f.ctx, cmd)
		require.ErrorIs(t, err, bridge.ErrDuplicate)
		assert.Equal(t, 1, f.get().LinksIssued)
		assert.Len(t, f.claimAll(), 1)
	})
}

func testLogin(t *testing.T, factory Factory) {
	t.Run("ticket is single use", func(t *testing.T) {
		f := newFixture(t, factory)
		tok := f.issue()
		txnTok, txn := f.begin(tok)
		_, err := f.s.BeginLogin(f.ctx, bridge.BeginLogin{Brand: f.key.Brand, Partition: tok.Partition, TicketHash: tok.Hash(), TxnHash: bridge.NewToken(f.key).Hash(), Now: f.clock.Now()})
		require.ErrorIs(t, err, bridge.ErrTicketInvalid)
		_, err = f.s.PeekTicket(f.ctx, f.key.Brand, tok.Partition, tok.Hash(), f.clock.Now())
		require.ErrorIs(t, err, bridge.ErrTicketInvalid)

		// The transaction is taken once, by its own brand, with the key filled in.
		_, err = f.s.TakeLogin(f.ctx, "other", txnTok.Partition, txnTok.Hash(), f.clock.Now())
		require.ErrorIs(t, err, bridge.ErrLoginInvalid)
		got, err := f.s.TakeLogin(f.ctx, f.key.Brand, txnTok.Partition, txnTok.Hash(), f.clock.Now())
		require.NoError(t, err)
		assert.Equal(t, f.key, got.Key)
		assert.Equal(t, txn.Nonce, got.Nonce)
		assert.Equal(t, txn.State, got.State)
		assert.Equal(t, txn.Verifier, got.Verifier)
		_, err = f.s.TakeLogin(f.ctx, f.key.Brand, txnTok.Partition, txnTok.Hash(), f.clock.Now())
		require.ErrorIs(t, err, bridge.ErrLoginInvalid)
	})
	t.Run("expired ticket and transaction", func(t *testing.T) {
		f := newFixture(t, factory)
		tok := f.issue()
		txnTok, _ := f.begin(f.issue())
		f.clock.Advance(11 * time.Minute)
		_, err := f.s.BeginLogin(f.ctx, bridge.BeginLogin{Brand: f.key.Brand, Partition: tok.Partition, TicketHash: tok.Hash(), TxnHash: "y", Now: f.clock.Now()})
		require.ErrorIs(t, err, bridge.ErrTicketInvalid)
		_, err = f.s.TakeLogin(f.ctx, f.key.Brand, txnTok.Partition, txnTok.Hash(), f.clock.Now())
		require.ErrorIs(t, err, bridge.ErrLoginInvalid)
	})
	t.Run("closed conversation", func(t *testing.T) {
		f := newFixture(t, factory)
		tok := f.issue()
		err := f.s.Close(f.ctx, "close-1", f.obs())
		require.NoError(t, err)
		_, err = f.s.PeekTicket(f.ctx, f.key.Brand, tok.Partition, tok.Hash(), f.clock.Now())
		require.ErrorIs(t, err, bridge.ErrTicketInvalid)
		_, err = f.s.VerifyLogin(f.ctx, bridge.VerifyLogin{Key: f.key, Identity: identity("u"), Now: f.clock.Now(), CodeHash: "h", CodeExpiresAt: f.clock.Now().Add(time.Minute)})
		require.ErrorIs(t, err, bridge.ErrClosed)
	})
	t.Run("verify unknown conversation", func(t *testing.T) {
		f := newFixture(t, factory)
		_, err := f.s.VerifyLogin(f.ctx, bridge.VerifyLogin{Key: f.key, Identity: identity("u"), Now: f.clock.Now(), CodeHash: "h", CodeExpiresAt: f.clock.Now().Add(time.Minute)})
		require.ErrorIs(t, err, bridge.ErrNotFound)
	})
}

func testConfirmCode(t *testing.T, factory Factory) {
	t.Run("match steps up once", func(t *testing.T) {
		f := newFixture(t, factory)
		f.pendingCode("123456")
		s := f.get()
		assert.Equal(t, bridge.StateLoginVerified, s.State)
		require.NotNil(t, s.Pending)
		assert.Nil(t, s.Identity)

		res, s, err := f.confirm("m-1", "123456", f.entry(bridge.EffectAttachIdentity), f.entry(bridge.EffectNotifyAgents))
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeMatched, res)
		assert.Equal(t, bridge.StateSteppedUp, s.State)
		require.NotNil(t, s.Identity)
		assert.Equal(t, "u-1", s.Identity.Subject)
		assert.Equal(t, []string{"pwd", "otp"}, s.Identity.AMR)
		assert.Equal(t, "C-1", s.Identity.Claims["customer_id"])
		assert.Nil(t, s.Pending)
		assert.Empty(t, s.CodeHash)
		assert.True(t, s.SteppedUpAt.Equal(f.clock.Now()))
		assert.Equal(t, s, f.get())

		ds := f.claimAll()
		require.Len(t, ds, 2)
		for _, d := range ds {
			require.NotNil(t, d.Entry.Identity, "step-up entries carry the identity")
			assert.Equal(t, "u-1", d.Entry.Identity.Subject)
		}
		// Replayed message: duplicate. Same code in a new message: no pending.
		_, _, err = f.confirm("m-1", "123456", f.entry(bridge.EffectNotifyAgents))
		require.ErrorIs(t, err, bridge.ErrDuplicate)
		res, _, err = f.confirm("m-2", "123456", f.entry(bridge.EffectNotifyAgents))
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeNoPending, res)
		assert.Empty(t, f.claimAll())
	})
	t.Run("wrong codes lock", func(t *testing.T) {
		f := newFixture(t, factory)
		f.pendingCode("123456")
		res, s, err := f.confirm("w-1", "000000")
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeMismatch, res)
		assert.Equal(t, 1, s.CodeAttempts)
		res, _, err = f.confirm("w-2", "000001")
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeMismatch, res)
		res, s, err = f.confirm("w-3", "000002")
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeLocked, res)
		assert.Equal(t, bridge.StateAnonymous, s.State)
		assert.Nil(t, s.Pending)
		// The right code is now useless.
		res, _, err = f.confirm("w-4", "123456", f.entry(bridge.EffectNotifyAgents))
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeNoPending, res)
		assert.Nil(t, f.get().Identity)
		assert.Empty(t, f.claimAll())
	})
	t.Run("expired code", func(t *testing.T) {
		f := newFixture(t, factory)
		f.pendingCode("123456")
		f.clock.Advance(5*time.Minute + time.Second)
		res, s, err := f.confirm("e-1", "123456", f.entry(bridge.EffectNotifyAgents))
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeExpired, res)
		assert.Equal(t, bridge.StateAnonymous, s.State)
		assert.Empty(t, f.claimAll())
	})
	t.Run("code typed in another conversation", func(t *testing.T) {
		f := newFixture(t, factory)
		f.pendingCode("123456")
		other := *f
		other.key = bridge.Key{Brand: f.key.Brand, Conversation: uniq("conv")}
		res, _, err := other.s.ConfirmCode(f.ctx, bridge.ConfirmCode{EventID: "x-1", Obs: other.obs(), CodeHash: bridge.CodeHash(other.key, "123456"), MaxAttempts: 3})
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeNoPending, res)
		assert.Equal(t, bridge.StateLoginVerified, f.get().State)
		assert.Equal(t, 0, f.get().CodeAttempts)
	})
	t.Run("no pending creates the session", func(t *testing.T) {
		f := newFixture(t, factory)
		res, s, err := f.confirm("n-1", "123456")
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeNoPending, res)
		assert.Equal(t, bridge.StateAnonymous, s.State)
	})
	t.Run("reverse fixation refused", func(t *testing.T) {
		f := newFixture(t, factory)
		f.pendingCode("123456")
		_, _, err := f.confirm("r-1", "123456")
		require.NoError(t, err)
		before := f.get()
		_, err = f.s.VerifyLogin(f.ctx, bridge.VerifyLogin{Key: f.key, Identity: identity("attacker"), Now: f.clock.Now(), CodeHash: "h", CodeExpiresAt: f.clock.Now().Add(time.Minute)})
		require.ErrorIs(t, err, bridge.ErrBoundElsewhere)
		_, err = f.s.VerifyLogin(f.ctx, bridge.VerifyLogin{Key: f.key, Identity: identity("u-1"), Now: f.clock.Now(), CodeHash: "h", CodeExpiresAt: f.clock.Now().Add(time.Minute)})
		require.ErrorIs(t, err, bridge.ErrAlreadySteppedUp)
		tok := bridge.NewToken(f.key)
		_, err = f.s.IssueTicket(f.ctx, bridge.IssueTicket{Key: f.key, TicketHash: tok.Hash(), Now: f.clock.Now(), ExpiresAt: f.clock.Now().Add(time.Minute)})
		require.ErrorIs(t, err, bridge.ErrAlreadySteppedUp)
		assert.Equal(t, before, f.get())
	})
}

func testBindingNone(t *testing.T, factory Factory) {
	f := newFixture(t, factory)
	f.issue()
	s, err := f.s.VerifyLogin(f.ctx, bridge.VerifyLogin{Key: f.key, Identity: identity("u-9"), Now: f.clock.Now(), Outbox: []bridge.OutboxEntry{f.entry(bridge.EffectAttachIdentity)}})
	require.NoError(t, err)
	assert.Equal(t, bridge.StateSteppedUp, s.State)
	require.NotNil(t, s.Identity)
	assert.Equal(t, "u-9", s.Identity.Subject)
	ds := f.claimAll()
	require.Len(t, ds, 1)
	require.NotNil(t, ds[0].Entry.Identity)
	assert.Equal(t, "u-9", ds[0].Entry.Identity.Subject)
}

func testClose(t *testing.T, factory Factory) {
	f := newFixture(t, factory)
	// Closing a conversation never seen records it closed (late events must not reopen it).
	require.NoError(t, f.s.Close(f.ctx, "c-1", f.obs()))
	assert.Equal(t, bridge.StateClosed, f.get().State)
	err := f.s.Close(f.ctx, "c-1", f.obs())
	require.ErrorIs(t, err, bridge.ErrDuplicate)
	require.NoError(t, f.s.Observe(f.ctx, "late-1", f.obs()))
	assert.Equal(t, bridge.StateClosed, f.get().State)
	tok := bridge.NewToken(f.key)
	obs := f.obs()
	_, err = f.s.IssueTicket(f.ctx, bridge.IssueTicket{Obs: &obs, Key: f.key, TicketHash: tok.Hash(), Now: f.clock.Now(), ExpiresAt: f.clock.Now().Add(time.Minute)})
	require.ErrorIs(t, err, bridge.ErrClosed)
}

func testOutbox(t *testing.T, factory Factory) {
	t.Run("ack retry bury", func(t *testing.T) {
		f := newFixture(t, factory)
		e1, e2, e3 := f.entry(bridge.EffectPostMessage), f.entry(bridge.EffectAttachIdentity), f.entry(bridge.EffectNotifyAgents)
		f.issue(e1, e2, e3)
		ds := f.claimAll()
		require.Len(t, ds, 3)
		byID := map[string]bridge.Delivery{}
		for _, d := range ds {
			byID[d.Entry.ID] = d
		}
		require.Contains(t, byID, e1.ID)
		assert.Equal(t, e2.Key, byID[e2.ID].Entry.Key)
		assert.Equal(t, e2.Effect, byID[e2.ID].Entry.Effect)

		// Claimed entries are not handed out again while leased.
		assert.Empty(t, f.claimAll())

		require.NoError(t, f.s.Ack(f.ctx, byID[e1.ID]))
		require.NoError(t, f.s.Retry(f.ctx, byID[e2.ID], f.clock.Now().Add(time.Minute), "503"))
		require.NoError(t, f.s.Bury(f.ctx, byID[e3.ID], "400 bad request"))

		assert.Empty(t, f.claimAll(), "retry not yet due")
		f.clock.Advance(time.Minute + time.Second)
		again := f.claimAll()
		require.Len(t, again, 1)
		assert.Equal(t, e2.ID, again[0].Entry.ID)
		assert.Equal(t, 2, again[0].Attempt)
		require.NoError(t, f.s.Ack(f.ctx, again[0]))
		f.clock.Advance(time.Hour)
		assert.Empty(t, f.claimAll())
	})
	t.Run("lease expiry hands out again", func(t *testing.T) {
		f := newFixture(t, factory)
		e := f.entry(bridge.EffectPostMessage)
		f.issue(e)
		ds := f.claimAll()
		require.Len(t, ds, 1)
		// Past the lease both on the injected clock and in real time.
		f.clock.Advance(DefaultOptions.ClaimTimeout + time.Second)
		time.Sleep(DefaultOptions.ClaimTimeout + 200*time.Millisecond)
		ds2, err := f.s.Claim(f.ctx, "w2", 10, 0)
		require.NoError(t, err)
		require.Len(t, ds2, 1, "a crashed worker's entry is claimed back")
		assert.Equal(t, e.ID, ds2[0].Entry.ID)
		assert.Equal(t, 2, ds2[0].Attempt)
		require.NoError(t, f.s.Ack(f.ctx, ds2[0]))
	})
	t.Run("claim waits", func(t *testing.T) {
		f := newFixture(t, factory)
		done := make(chan []bridge.Delivery)
		go func() {
			ds, _ := f.s.Claim(f.ctx, "w1", 10, 3*time.Second)
			done <- ds
		}()
		time.Sleep(100 * time.Millisecond)
		f.issue(f.entry(bridge.EffectPostMessage))
		select {
		case ds := <-done:
			// Some stores poll: an empty answer within wait is allowed, a late one is not.
			if len(ds) == 0 {
				ds = f.claimAll()
			}
			require.Len(t, ds, 1)
		case <-time.After(5 * time.Second):
			t.Fatal("Claim did not return within its wait")
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		f := newFixture(t, factory)
		ctx, cancel := context.WithCancel(f.ctx)
		cancel()
		_, err := f.s.Claim(ctx, "w1", 10, time.Second)
		if err != nil {
			assert.True(t, errors.Is(err, context.Canceled), "got %v", err)
		}
	})
}

func testRaces(t *testing.T, factory Factory) {
	const n = 16
	run := func(fn func(i int) error) (ok int, errs []error) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := fn(i)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					ok++
				} else {
					errs = append(errs, err)
				}
			}()
		}
		wg.Wait()
		return ok, errs
	}
	t.Run("ticket consumed once", func(t *testing.T) {
		f := newFixture(t, factory)
		tok := f.issue()
		ok, errs := run(func(i int) error {
			_, err := f.s.BeginLogin(f.ctx, bridge.BeginLogin{Brand: f.key.Brand, Partition: tok.Partition, TicketHash: tok.Hash(), TxnHash: bridge.NewToken(f.key).Hash(), Txn: bridge.LoginTxn{ExpiresAt: f.clock.Now().Add(time.Minute)}, Now: f.clock.Now()})
			return err
		})
		assert.Equal(t, 1, ok)
		for _, err := range errs {
			assert.ErrorIs(t, err, bridge.ErrTicketInvalid)
		}
	})
	t.Run("code matched once", func(t *testing.T) {
		f := newFixture(t, factory)
		f.pendingCode("123456")
		var matched atomic.Int32
		_, errs := run(func(i int) error {
			res, _, err := f.confirm(fmt.Sprintf("race-%d", i), "123456", f.entry(bridge.EffectNotifyAgents))
			if res == bridge.CodeMatched {
				matched.Add(1)
			}
			return err
		})
		assert.Empty(t, errs)
		assert.Equal(t, int32(1), matched.Load())
		assert.Len(t, f.claimAll(), 1)
	})
	t.Run("event deduped once", func(t *testing.T) {
		f := newFixture(t, factory)
		ok, errs := run(func(i int) error {
			err := f.s.Observe(f.ctx, "same-event", f.obs())
			return err
		})
		assert.Equal(t, 1, ok)
		for _, err := range errs {
			assert.ErrorIs(t, err, bridge.ErrDuplicate)
		}
	})
	t.Run("wrong codes counted exactly", func(t *testing.T) {
		f := newFixture(t, factory)
		f.pendingCode("123456")
		var locked, mismatched atomic.Int32
		run(func(i int) error {
			res, _, err := f.confirm(fmt.Sprintf("bad-%d", i), "999999")
			switch res {
			case bridge.CodeLocked:
				locked.Add(1)
			case bridge.CodeMismatch:
				mismatched.Add(1)
			}
			return err
		})
		assert.Equal(t, int32(1), locked.Load())
		assert.Equal(t, int32(2), mismatched.Load())
	})
}
