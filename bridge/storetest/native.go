package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

func loginRecord(brand, sub string, verified bool, at time.Time) bridge.LoginRecord {
	id := identity(sub)
	if !verified {
		id.Name = "hint only"
	}
	return bridge.LoginRecord{Brand: brand, Source: "token_endpoint", Verified: verified, Identity: id, At: at}
}

func testLogins(t *testing.T, factory Factory) {
	t.Run("record and expire", func(t *testing.T) {
		f := newFixture(t, factory)
		sub := uniq("sub")
		now := f.clock.Now()
		_, err := f.s.LatestLogin(f.ctx, "acme", sub, now)
		require.ErrorIs(t, err, bridge.ErrNotFound)

		require.NoError(t, f.s.RecordLogin(f.ctx, loginRecord("acme", sub, true, now), now.Add(10*time.Minute)))
		got, err := f.s.LatestLogin(f.ctx, "acme", sub, now)
		require.NoError(t, err)
		assert.True(t, got.Verified)
		assert.Equal(t, "token_endpoint", got.Source)
		assert.Equal(t, sub, got.Identity.Subject)
		assert.Equal(t, []string{"pwd", "otp"}, got.Identity.AMR)
		assert.Equal(t, "C-1", got.Identity.Claims["customer_id"])
		assert.True(t, got.At.Equal(now))

		// Per brand.
		_, err = f.s.LatestLogin(f.ctx, "other", sub, now)
		require.ErrorIs(t, err, bridge.ErrNotFound)

		f.clock.Advance(10 * time.Minute)
		_, err = f.s.LatestLogin(f.ctx, "acme", sub, f.clock.Now())
		require.ErrorIs(t, err, bridge.ErrNotFound, "a login past its window is gone")
	})
	t.Run("hint never replaces a verified login", func(t *testing.T) {
		f := newFixture(t, factory)
		sub := uniq("sub")
		now := f.clock.Now()
		require.NoError(t, f.s.RecordLogin(f.ctx, loginRecord("acme", sub, true, now), now.Add(10*time.Minute)))
		require.ErrorIs(t, f.s.RecordLogin(f.ctx, loginRecord("acme", sub, false, now.Add(time.Minute)), now.Add(11*time.Minute)), bridge.ErrLoginSuperseded)
		got, err := f.s.LatestLogin(f.ctx, "acme", sub, now.Add(time.Minute))
		require.NoError(t, err)
		assert.True(t, got.Verified)
		assert.Equal(t, "Jane Ö", got.Identity.Name)

		// A newer verified login replaces; a hint alone is kept as a hint.
		later := loginRecord("acme", sub, true, now.Add(2*time.Minute))
		later.Identity.AMR = []string{"hwk"}
		require.NoError(t, f.s.RecordLogin(f.ctx, later, now.Add(12*time.Minute)))
		got, err = f.s.LatestLogin(f.ctx, "acme", sub, now.Add(2*time.Minute))
		require.NoError(t, err)
		assert.Equal(t, []string{"hwk"}, got.Identity.AMR)

		// An older or same-time verified login (a late or replayed
		// delivery) never rolls the newer one back.
		for _, at := range []time.Time{now.Add(time.Minute), now.Add(2 * time.Minute)} {
			older := loginRecord("acme", sub, true, at)
			older.Identity.AMR = []string{"pwd"}
			require.ErrorIs(t, f.s.RecordLogin(f.ctx, older, at.Add(10*time.Minute)), bridge.ErrLoginSuperseded)
		}
		got, err = f.s.LatestLogin(f.ctx, "acme", sub, now.Add(2*time.Minute))
		require.NoError(t, err)
		assert.Equal(t, []string{"hwk"}, got.Identity.AMR)

		hintSub := uniq("sub")
		require.NoError(t, f.s.RecordLogin(f.ctx, loginRecord("acme", hintSub, false, now), now.Add(time.Minute)))
		got, err = f.s.LatestLogin(f.ctx, "acme", hintSub, now)
		require.NoError(t, err)
		assert.False(t, got.Verified)
		// A verified login replaces a hint whatever their times.
		require.NoError(t, f.s.RecordLogin(f.ctx, loginRecord("acme", hintSub, true, now.Add(-time.Second)), now.Add(time.Minute)))
		got, err = f.s.LatestLogin(f.ctx, "acme", hintSub, now)
		require.NoError(t, err)
		assert.True(t, got.Verified)
		// Once expired, any record may take its place.
		f.clock.Advance(20 * time.Minute)
		later = loginRecord("acme", sub, false, f.clock.Now())
		require.NoError(t, f.s.RecordLogin(f.ctx, later, f.clock.Now().Add(time.Minute)))
	})
}

func testNativeStepUp(t *testing.T, factory Factory) {
	swap := func(f *fixture, eventID, sub string, outbox ...bridge.OutboxEntry) (bridge.Session, error) {
		obs := f.obs()
		obs.Consumer = "authenticated-1"
		return f.s.NativeStepUp(f.ctx, bridge.NativeStepUp{EventID: eventID, Obs: obs, Identity: identity(sub), Outbox: outbox})
	}
	t.Run("steps up once", func(t *testing.T) {
		f := newFixture(t, factory)
		err := f.s.Observe(f.ctx, "o-1", f.obs())
		require.NoError(t, err)
		f.clock.Advance(time.Minute)
		s, err := swap(f, "swap-1", "u-1", f.entry(bridge.EffectNotifyAgents))
		require.NoError(t, err)
		assert.Equal(t, bridge.StateSteppedUp, s.State)
		require.NotNil(t, s.Identity)
		assert.Equal(t, "u-1", s.Identity.Subject)
		assert.Equal(t, "anon-1", s.Consumer, "the session keeps its anonymous consumer")
		assert.Equal(t, "authenticated-1", s.AuthConsumer, "and knows the authenticated one")
		assert.True(t, s.SteppedUpAt.Equal(f.clock.Now()))
		assert.Equal(t, s, f.get())
		ds := f.claimAll()
		require.Len(t, ds, 1)
		require.NotNil(t, ds[0].Entry.Identity)
		assert.Equal(t, "u-1", ds[0].Entry.Identity.Subject)

		before := f.get()
		_, err = swap(f, "swap-1", "u-1", f.entry(bridge.EffectNotifyAgents))
		require.ErrorIs(t, err, bridge.ErrDuplicate)
		_, err = swap(f, "swap-2", "u-1", f.entry(bridge.EffectNotifyAgents))
		require.ErrorIs(t, err, bridge.ErrAlreadySteppedUp)
		_, err = swap(f, "swap-3", "attacker", f.entry(bridge.EffectNotifyAgents))
		require.ErrorIs(t, err, bridge.ErrBoundElsewhere)
		assert.Equal(t, before, f.get())
		assert.Empty(t, f.claimAll(), "refused swaps write nothing")
	})
	t.Run("another identity writes the warning once", func(t *testing.T) {
		f := newFixture(t, factory)
		err := f.s.Observe(f.ctx, "o-1", f.obs())
		require.NoError(t, err)
		_, err = swap(f, "swap-1", "u-1")
		require.NoError(t, err)
		before := f.get()
		note := f.entry(bridge.EffectNotifyAgents)
		note.Text = "warning"
		obs := f.obs()
		obs.Consumer = "someone-else"
		cmd := bridge.NativeStepUp{EventID: "swap-2", Obs: obs, Identity: identity("u-2"), Outbox: []bridge.OutboxEntry{f.entry(bridge.EffectAttachIdentity)}, BoundElsewhereNote: &note}
		_, err = f.s.NativeStepUp(f.ctx, cmd)
		require.ErrorIs(t, err, bridge.ErrBoundElsewhere)
		ds := f.claimAll()
		require.Len(t, ds, 1, "only the warning")
		assert.Equal(t, "warning", ds[0].Entry.Text)
		assert.Nil(t, ds[0].Entry.Identity)
		_, err = f.s.NativeStepUp(f.ctx, cmd)
		require.ErrorIs(t, err, bridge.ErrDuplicate, "the warned event counts as seen")
		assert.Empty(t, f.claimAll())
		assert.Equal(t, before, f.get(), "still bound to the first identity")
		// The same identity again is no warning.
		cmd.EventID, cmd.Identity = "swap-3", identity("u-1")
		_, err = f.s.NativeStepUp(f.ctx, cmd)
		require.ErrorIs(t, err, bridge.ErrAlreadySteppedUp)
		assert.Empty(t, f.claimAll())
	})
	t.Run("pending code is superseded", func(t *testing.T) {
		f := newFixture(t, factory)
		f.pendingCode("123456")
		s, err := swap(f, "swap-1", "u-7")
		require.NoError(t, err)
		assert.Equal(t, bridge.StateSteppedUp, s.State)
		assert.Empty(t, s.CodeHash)
		assert.Nil(t, s.Pending)
		res, _, err := f.confirm("m-1", "123456")
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeNoPending, res)
	})
	t.Run("unknown and closed conversations", func(t *testing.T) {
		f := newFixture(t, factory)
		_, err := swap(f, "swap-1", "u-1", f.entry(bridge.EffectNotifyAgents))
		require.ErrorIs(t, err, bridge.ErrNotFound)
		_, err = f.s.Get(f.ctx, f.key)
		require.ErrorIs(t, err, bridge.ErrNotFound, "a refused swap creates nothing")

		err = f.s.Close(f.ctx, "c-1", f.obs())
		require.NoError(t, err)
		_, err = swap(f, "swap-2", "u-1", f.entry(bridge.EffectNotifyAgents))
		require.ErrorIs(t, err, bridge.ErrClosed)
		assert.Equal(t, bridge.StateClosed, f.get().State)
		assert.Empty(t, f.claimAll())
	})
	t.Run("concurrent swaps step up once", func(t *testing.T) {
		f := newFixture(t, factory)
		err := f.s.Observe(f.ctx, "o-1", f.obs())
		require.NoError(t, err)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Retries of one notification plus distinct copies.
				id := "swap-a"
				if i%2 == 1 {
					id = uniq("swap")
				}
				if _, err := swap(f, id, "u-1", f.entry(bridge.EffectNotifyAgents)); err == nil {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		assert.EqualValues(t, 1, wins.Load())
		assert.Len(t, f.claimAll(), 1)
	})
}
