package liveperson_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson/lptest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/memstore"
)

// TestParseWebhookSecondSwap: after a native step-up, later changes carry
// the authenticated consumer (no swap); yet another authenticated consumer
// is a swap again, so the service can warn the agents (it never rebinds).
func TestParseWebhookSecondSwap(t *testing.T) {
	f := lptest.NewTest(t, lptest.Config{})
	clk := newClock()
	store := memstore.New(memstore.Options{Clock: clk})
	a := newAdapter(t, f, platformConfig(f), clk)
	a.BindBrand("acme", store)
	ctx := context.Background()
	const conv, anon, authed, other = "conv-2", "anon-consumer", "authed-consumer", "other-consumer"
	key := bridge.Key{Brand: "acme", Conversation: conv}
	err := store.Observe(ctx, "o-1", bridge.Observation{Key: key, Platform: "liveperson", Consumer: anon, At: clk.Now()})
	require.NoError(t, err)
	_, err = store.NativeStepUp(ctx, bridge.NativeStepUp{EventID: "s-1", Obs: bridge.Observation{Key: key, Platform: "liveperson", Consumer: authed, At: clk.Now()},
		Identity: bridge.Identity{Issuer: "https://idp.example", Subject: "user-42", VerifiedAt: clk.Now()}})
	require.NoError(t, err)

	// The authenticated consumer again: no swap, no profile read.
	evs, err := a.ParseWebhook(ctx, webhook(f, cqm(conv, authed, "OPEN", 7000)))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.NotEqual(t, bridge.EventIdentitySwap, evs[0].Kind)

	// Another authenticated consumer: a swap with its customer id.
	f.SetProfile(other, lptest.AuthenticatedProfile("user-77"))
	require.Eventually(t, func() bool { l, _, _, _ := f.Counts(); return l >= 1 }, 5*time.Second, 10*time.Millisecond)
	evs, err = a.ParseWebhook(ctx, webhook(f, cqm(conv, other, "OPEN", 8000)))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, bridge.EventIdentitySwap, evs[0].Kind)
	assert.Equal(t, "user-77", evs[0].Subject)
	assert.Empty(t, f.Violations())
}
