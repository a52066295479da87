package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// testBindingEdges: the binding rule and expiries at their edges (the
// forwarded-link attack with the attacker logging in first, exact expiry
// instants, recorded logins binding nothing).
func testBindingEdges(t *testing.T, factory Factory) {
	t.Run("a later login replaces the pending code", func(t *testing.T) {
		// The forwarded-link attack with the attacker logging in first: the
		// attacker knows their own code; once the victim's login (through the
		// forwarded link) arrives, that code must not bind the victim.
		f := newFixture(t, factory)
		f.pendingCode("111111") // the attacker's own login, code known to them
		_, err := f.s.VerifyLogin(f.ctx, bridge.VerifyLogin{Key: f.key, Identity: identity("victim"), Now: f.clock.Now(), CodeHash: bridge.CodeHash(f.key, "222222"), CodeExpiresAt: f.clock.Now().Add(5 * time.Minute)})
		require.NoError(t, err)
		res, s, err := f.confirm("r-1", "111111", f.entry(bridge.EffectAttachIdentity))
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeMismatch, res)
		assert.Nil(t, s.Identity)
		res, s, err = f.confirm("r-2", "222222", f.entry(bridge.EffectAttachIdentity))
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeMatched, res)
		require.NotNil(t, s.Identity)
		assert.Equal(t, "victim", s.Identity.Subject)
	})
	t.Run("native step-up discards a pending code", func(t *testing.T) {
		f := newFixture(t, factory)
		f.pendingCode("123456")
		id := identity("platform-user")
		_, err := f.s.NativeStepUp(f.ctx, bridge.NativeStepUp{EventID: "swap-1", Obs: f.obs(), Identity: id})
		require.NoError(t, err)
		res, s, err := f.confirm("c-1", "123456", f.entry(bridge.EffectAttachIdentity))
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeNoPending, res)
		assert.Equal(t, "platform-user", s.Identity.Subject)
	})
	t.Run("expiries hold at their exact instant", func(t *testing.T) {
		f := newFixture(t, factory)
		tok := f.issue() // link valid 10 minutes
		f.clock.Advance(10 * time.Minute)
		_, err := f.s.PeekTicket(f.ctx, f.key.Brand, tok.Partition, tok.Hash(), f.clock.Now())
		require.ErrorIs(t, err, bridge.ErrTicketInvalid)
		_, err = f.s.BeginLogin(f.ctx, bridge.BeginLogin{Brand: f.key.Brand, Partition: tok.Partition, TicketHash: tok.Hash(), TxnHash: bridge.NewToken(f.key).Hash(), Now: f.clock.Now(), Txn: bridge.LoginTxn{ExpiresAt: f.clock.Now().Add(time.Minute)}})
		require.ErrorIs(t, err, bridge.ErrTicketInvalid)

		txnTok, _ := f.begin(f.issue()) // transaction valid 10 minutes
		f.clock.Advance(10 * time.Minute)
		_, err = f.s.TakeLogin(f.ctx, f.key.Brand, txnTok.Partition, txnTok.Hash(), f.clock.Now())
		require.ErrorIs(t, err, bridge.ErrLoginInvalid)

		g := newFixture(t, factory)
		g.pendingCode("123456") // code valid 5 minutes
		g.clock.Advance(5 * time.Minute)
		res, s, err := g.confirm("e-1", "123456", g.entry(bridge.EffectAttachIdentity))
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeExpired, res)
		assert.Nil(t, s.Identity)
		assert.Empty(t, g.claimAll())
	})
	t.Run("a recorded login binds nothing", func(t *testing.T) {
		f := newFixture(t, factory)
		err := f.s.Observe(f.ctx, "o-1", f.obs())
		require.NoError(t, err)
		require.NoError(t, f.s.RecordLogin(f.ctx, loginRecord(f.key.Brand, "anyone", true, f.clock.Now()), f.clock.Now().Add(time.Hour)))
		s := f.get()
		assert.Equal(t, bridge.StateAnonymous, s.State)
		assert.Nil(t, s.Identity)
		assert.Empty(t, f.claimAll())
	})
}
