package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// testCodeFeedback: each code result writes its own feedback entry, in the
// same atomic call, and only that one.
func testCodeFeedback(t *testing.T, factory Factory) {
	feedback := func(f *fixture) map[bridge.CodeResult]bridge.OutboxEntry {
		m := map[bridge.CodeResult]bridge.OutboxEntry{}
		for _, r := range []bridge.CodeResult{bridge.CodeMismatch, bridge.CodeLocked, bridge.CodeExpired} {
			e := f.entry(bridge.EffectPostMessage)
			e.Text = string(r)
			m[r] = e
		}
		return m
	}
	confirm := func(f *fixture, eventID, code string) (bridge.CodeResult, error) {
		res, _, err := f.s.ConfirmCode(f.ctx, bridge.ConfirmCode{EventID: eventID, Obs: f.obs(), CodeHash: bridge.CodeHash(f.key, code), MaxAttempts: 2,
			Outbox: []bridge.OutboxEntry{f.entry(bridge.EffectNotifyAgents)}, Feedback: feedback(f)})
		return res, err
	}
	texts := func(f *fixture) []string {
		var out []string
		for _, d := range f.claimAll() {
			out = append(out, d.Entry.Text)
			assert.Nil(t, d.Entry.Identity, "feedback carries no identity")
			require.NoError(t, f.s.Ack(f.ctx, d))
		}
		return out
	}

	t.Run("mismatch then locked", func(t *testing.T) {
		f := newFixture(t, factory)
		f.pendingCode("123456")
		res, err := confirm(f, "m-1", "000000")
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeMismatch, res)
		assert.Equal(t, []string{"mismatch"}, texts(f))
		_, err = confirm(f, "m-1", "000000")
		require.ErrorIs(t, err, bridge.ErrDuplicate)
		assert.Empty(t, texts(f), "a duplicate writes no feedback")
		res, err = confirm(f, "m-2", "000001")
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeLocked, res)
		assert.Equal(t, []string{"locked"}, texts(f))
		res, err = confirm(f, "m-3", "123456")
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeNoPending, res)
		assert.Empty(t, texts(f), "an ordinary message gets no feedback")
	})
	t.Run("expired", func(t *testing.T) {
		f := newFixture(t, factory)
		f.pendingCode("123456")
		f.clock.Advance(5*time.Minute + time.Second)
		res, err := confirm(f, "e-1", "123456")
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeExpired, res)
		assert.Equal(t, []string{"expired"}, texts(f))
	})
	t.Run("matched writes the step-up, not feedback", func(t *testing.T) {
		f := newFixture(t, factory)
		f.pendingCode("123456")
		res, err := confirm(f, "ok-1", "123456")
		require.NoError(t, err)
		assert.Equal(t, bridge.CodeMatched, res)
		ds := f.claimAll()
		require.Len(t, ds, 1)
		assert.Equal(t, bridge.EffectNotifyAgents, ds[0].Entry.Effect)
	})
}

// testRefusalNotes: a refused command from an event writes the note for
// that refusal (once: the event then counts as seen) and nothing else; an
// API command (no event id) writes none.
func testRefusalNotes(t *testing.T, factory Factory) {
	notes := func(f *fixture) map[error]bridge.OutboxEntry {
		m := map[error]bridge.OutboxEntry{}
		for _, e := range []error{bridge.ErrClosed, bridge.ErrAlreadySteppedUp, bridge.ErrTooManyLinks} {
			n := f.entry(bridge.EffectNotifyAgents)
			n.Text = e.Error()
			m[e] = n
		}
		return m
	}
	issue := func(f *fixture, eventID string, maxLinks int) error {
		obs := f.obs()
		_, err := f.s.IssueTicket(f.ctx, bridge.IssueTicket{EventID: eventID, Obs: &obs, Key: f.key, TicketHash: bridge.NewToken(f.key).Hash(), Now: f.clock.Now(),
			ExpiresAt: f.clock.Now().Add(time.Minute), MaxLinks: maxLinks, Outbox: []bridge.OutboxEntry{f.entry(bridge.EffectPostMessage)}, RefusalNotes: notes(f)})
		return err
	}
	texts := func(f *fixture) []string {
		var out []string
		for _, d := range f.claimAll() {
			out = append(out, string(d.Entry.Effect)+": "+d.Entry.Text)
			require.NoError(t, f.s.Ack(f.ctx, d))
		}
		return out
	}

	t.Run("too many links", func(t *testing.T) {
		f := newFixture(t, factory)
		require.NoError(t, issue(f, "cmd-1", 1))
		assert.Len(t, texts(f), 1, "the link message")
		require.ErrorIs(t, issue(f, "cmd-2", 1), bridge.ErrTooManyLinks)
		assert.Equal(t, []string{"notify_agents: " + bridge.ErrTooManyLinks.Error()}, texts(f))
		require.ErrorIs(t, issue(f, "cmd-2", 1), bridge.ErrDuplicate, "the refused event counts as seen")
		assert.Empty(t, texts(f))
		assert.Equal(t, 1, f.get().LinksIssued)
		// From the API (no event): refused, no note.
		require.ErrorIs(t, issue(f, "", 1), bridge.ErrTooManyLinks)
		assert.Empty(t, texts(f))
	})
	t.Run("stepped up and closed", func(t *testing.T) {
		f := newFixture(t, factory)
		f.pendingCode("123456")
		_, _, err := f.confirm("m-1", "123456")
		require.NoError(t, err)
		f.claimAll()
		require.ErrorIs(t, issue(f, "cmd-1", 5), bridge.ErrAlreadySteppedUp)
		assert.Equal(t, []string{"notify_agents: " + bridge.ErrAlreadySteppedUp.Error()}, texts(f))

		g := newFixture(t, factory)
		err = g.s.Close(g.ctx, "close-1", g.obs())
		require.NoError(t, err)
		require.ErrorIs(t, issue(g, "cmd-1", 5), bridge.ErrClosed)
		assert.Equal(t, []string{"notify_agents: " + bridge.ErrClosed.Error()}, texts(g))
		assert.Equal(t, bridge.StateClosed, g.get().State)
	})
}
