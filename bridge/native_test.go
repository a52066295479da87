package bridge_test

import (
	"context"
	"slices"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/memstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/storetest"
)

// eventsPlatform hands the service the events a test queues, as an adapter
// would after verifying a webhook.
type eventsPlatform struct{ next []bridge.Event }

func (p *eventsPlatform) ParseWebhook(context.Context, bridge.WebhookRequest) ([]bridge.Event, error) {
	evs := p.next
	p.next = nil
	return evs, nil
}

func (p *eventsPlatform) Deliver(context.Context, bridge.OutboxEntry) error { return nil }

type nativeFixture struct {
	t     *testing.T
	clock *storetest.Clock
	store *memstore.Store
	svc   *bridge.Service
	plat  *eventsPlatform
}

func newNative(t *testing.T) *nativeFixture {
	clock := storetest.NewClock()
	st := memstore.New(memstore.Options{Clock: clock})
	plat := &eventsPlatform{}
	brand := &bridge.Brand{ID: "acme", Platforms: map[string]bridge.Platform{"liveperson": plat}, Policy: bridge.Policy{
		NotifyAgents: true, NotifyMessage: template.Must(template.New("n").Parse("{{.Name}}")), Skill: "authenticated", LoginWindow: 10 * time.Minute,
	}}
	svc, err := bridge.NewService(bridge.Options{Store: st, Brands: []*bridge.Brand{brand}, Clock: clock, PublicURL: "https://bridge.example"})
	require.NoError(t, err)
	return &nativeFixture{t: t, clock: clock, store: st, svc: svc, plat: plat}
}

func (f *nativeFixture) send(evs ...bridge.Event) bridge.WebhookResult {
	f.t.Helper()
	f.plat.next = evs
	res, err := f.svc.HandleWebhook(context.Background(), "acme", "liveperson", bridge.WebhookRequest{})
	require.NoError(f.t, err)
	return res
}

func (f *nativeFixture) effects() []bridge.Effect {
	ds, err := f.store.Claim(context.Background(), "w", 100, 0)
	require.NoError(f.t, err)
	var out []bridge.Effect
	for _, d := range ds {
		out = append(out, d.Entry.Effect)
		require.NoError(f.t, f.store.Ack(context.Background(), d))
	}
	return out
}

func sorted(es []bridge.Effect) []bridge.Effect {
	slices.Sort(es)
	return es
}

func verified(sub string) bridge.Identity {
	return bridge.Identity{Provider: "Acme ID", Issuer: "https://idp.example", Subject: sub, Name: "Jane Doe", AMR: []string{"pwd", "mfa"}}
}

func TestIdentitySwapCorrelatesRecordedLogin(t *testing.T) {
	f := newNative(t)
	ctx := context.Background()
	f.send(bridge.Event{ID: "e1", Kind: bridge.EventConversationStarted, Conversation: "c1", Consumer: "anon"})
	f.clock.Advance(time.Minute)
	require.NoError(t, f.svc.RecordLogin(ctx, bridge.LoginRecord{Brand: "acme", Source: "token_endpoint", Verified: true, Identity: verified("C-1001")}))
	f.clock.Advance(5 * time.Second)

	swap := bridge.Event{ID: "swap-1", Kind: bridge.EventIdentitySwap, Conversation: "c1", Consumer: "auth-consumer", Subject: "C-1001"}
	res := f.send(swap, swap) // a retried copy in the same call
	assert.Equal(t, 1, res.Events)
	assert.Equal(t, 1, res.Duplicates)

	s, err := f.svc.Status(ctx, "acme", "c1")
	require.NoError(t, err)
	assert.Equal(t, bridge.StateSteppedUp, s.State)
	require.NotNil(t, s.Identity)
	assert.Equal(t, "Acme ID", s.Identity.Provider, "the recorded login's details, not the platform's bare id")
	assert.Equal(t, []string{"pwd", "mfa"}, s.Identity.AMR)
	assert.Equal(t, []bridge.Effect{bridge.EffectAttachIdentity, bridge.EffectNotifyAgents, bridge.EffectRouteSkill}, sorted(f.effects()))

	// A later copy with another id is acknowledged and changes nothing.
	f.send(bridge.Event{ID: "swap-2", Kind: bridge.EventIdentitySwap, Conversation: "c1", Consumer: "auth-consumer", Subject: "C-1001"})
	assert.Empty(t, f.effects())
}

func TestIdentitySwapRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("uncorrelated swap says so", func(t *testing.T) {
		f := newNative(t)
		f.send(bridge.Event{ID: "e1", Kind: bridge.EventConversationStarted, Conversation: "c1", Consumer: "anon"})
		// A hint alone (unverified) is not used as the identity.
		require.NoError(t, f.svc.RecordLogin(ctx, bridge.LoginRecord{Brand: "acme", Source: "okta", Verified: false, Identity: verified("C-9")}))
		f.send(bridge.Event{ID: "s1", Kind: bridge.EventIdentitySwap, Conversation: "c1", Consumer: "auth", Subject: "C-9"})
		s, err := f.svc.Status(ctx, "acme", "c1")
		require.NoError(t, err)
		require.NotNil(t, s.Identity)
		assert.Equal(t, "platform:liveperson", s.Identity.Issuer)
		assert.Equal(t, "C-9", s.Identity.Subject)
		assert.Empty(t, s.Identity.AMR)
	})
	t.Run("expired login window", func(t *testing.T) {
		f := newNative(t)
		f.send(bridge.Event{ID: "e1", Kind: bridge.EventConversationStarted, Conversation: "c1", Consumer: "anon"})
		require.NoError(t, f.svc.RecordLogin(ctx, bridge.LoginRecord{Brand: "acme", Source: "token_endpoint", Verified: true, Identity: verified("C-1")}))
		f.clock.Advance(11 * time.Minute)
		f.send(bridge.Event{ID: "s1", Kind: bridge.EventIdentitySwap, Conversation: "c1", Consumer: "auth", Subject: "C-1"})
		s, err := f.svc.Status(ctx, "acme", "c1")
		require.NoError(t, err)
		assert.Equal(t, "platform:liveperson", s.Identity.Issuer)
	})
	t.Run("never seen, closed, rebinding", func(t *testing.T) {
		f := newNative(t)
		f.send(bridge.Event{ID: "s0", Kind: bridge.EventIdentitySwap, Conversation: "unknown", Consumer: "auth", Subject: "C-1"})
		_, err := f.svc.Status(ctx, "acme", "unknown")
		require.ErrorIs(t, err, bridge.ErrNotFound)

		f.send(bridge.Event{ID: "e1", Kind: bridge.EventConversationStarted, Conversation: "c1", Consumer: "anon"},
			bridge.Event{ID: "e2", Kind: bridge.EventConversationClosed, Conversation: "c1"})
		f.send(bridge.Event{ID: "s1", Kind: bridge.EventIdentitySwap, Conversation: "c1", Consumer: "auth", Subject: "C-1"})
		s, err := f.svc.Status(ctx, "acme", "c1")
		require.NoError(t, err)
		assert.Equal(t, bridge.StateClosed, s.State)

		f.send(bridge.Event{ID: "e3", Kind: bridge.EventConversationStarted, Conversation: "c2", Consumer: "anon"},
			bridge.Event{ID: "s2", Kind: bridge.EventIdentitySwap, Conversation: "c2", Consumer: "auth", Subject: "C-1"})
		f.effects()
		f.send(bridge.Event{ID: "s3", Kind: bridge.EventIdentitySwap, Conversation: "c2", Consumer: "other", Subject: "C-2"})
		s, err = f.svc.Status(ctx, "acme", "c2")
		require.NoError(t, err)
		assert.Equal(t, "C-1", s.Identity.Subject, "a stepped-up conversation is never rebound")
		assert.Equal(t, []bridge.Effect{bridge.EffectNotifyAgents}, f.effects(), "the agents are warned")
	})
	t.Run("swap without customer id is malformed", func(t *testing.T) {
		f := newNative(t)
		f.plat.next = []bridge.Event{{ID: "s1", Kind: bridge.EventIdentitySwap, Conversation: "c1", Consumer: "auth"}}
		_, err := f.svc.HandleWebhook(ctx, "acme", "liveperson", bridge.WebhookRequest{})
		require.ErrorIs(t, err, bridge.ErrMalformed)
	})
	t.Run("record login validates", func(t *testing.T) {
		f := newNative(t)
		require.ErrorIs(t, f.svc.RecordLogin(ctx, bridge.LoginRecord{Brand: "nope", Identity: verified("x")}), bridge.ErrUnknownBrand)
		require.ErrorIs(t, f.svc.RecordLogin(ctx, bridge.LoginRecord{Brand: "acme"}), bridge.ErrMalformed)
	})
}

// TestEventIDsArePerPlatform: two platforms of one brand may use the same
// event id; neither is taken for a duplicate of the other.
func TestEventIDsArePerPlatform(t *testing.T) {
	clock := storetest.NewClock()
	st := memstore.New(memstore.Options{Clock: clock})
	a, b := &eventsPlatform{}, &eventsPlatform{}
	brand := &bridge.Brand{ID: "acme", Platforms: map[string]bridge.Platform{"standard": a, "liveperson": b}}
	svc, err := bridge.NewService(bridge.Options{Store: st, Brands: []*bridge.Brand{brand}, Clock: clock})
	require.NoError(t, err)
	ctx := context.Background()

	a.next = []bridge.Event{{ID: "42", Kind: bridge.EventConversationStarted, Conversation: "c-std"}}
	res, err := svc.HandleWebhook(ctx, "acme", "standard", bridge.WebhookRequest{})
	require.NoError(t, err)
	assert.Equal(t, 1, res.Events)
	b.next = []bridge.Event{{ID: "42", Kind: bridge.EventConversationStarted, Conversation: "c-lp"}}
	res, err = svc.HandleWebhook(ctx, "acme", "liveperson", bridge.WebhookRequest{})
	require.NoError(t, err)
	assert.Equal(t, 1, res.Events, "same id, other platform: not a duplicate")
	_, err = svc.Status(ctx, "acme", "c-lp")
	require.NoError(t, err)

	b.next = []bridge.Event{{ID: "42", Kind: bridge.EventConversationStarted, Conversation: "c-lp"}}
	res, err = svc.HandleWebhook(ctx, "acme", "liveperson", bridge.WebhookRequest{})
	require.NoError(t, err)
	assert.Equal(t, 1, res.Duplicates, "same id, same platform: a retry")
}

// countingPlatform counts platform calls.
type countingPlatform struct {
	eventsPlatform
	calls int
}

func (p *countingPlatform) Deliver(context.Context, bridge.OutboxEntry) error {
	p.calls++
	return nil
}

// TestExpiredLinkMessageNotDelivered: the outbox retries for days, a login
// link lives minutes; a link message still undelivered when its link
// expires goes to the dead letters, and the consumer never gets a dead link.
func TestExpiredLinkMessageNotDelivered(t *testing.T) {
	clock := storetest.NewClock()
	st := memstore.New(memstore.Options{Clock: clock})
	plat := &countingPlatform{}
	brand := &bridge.Brand{ID: "acme", Platforms: map[string]bridge.Platform{"standard": plat}, Policy: bridge.Policy{
		LinkTTL: 10 * time.Minute, MaxLinks: 5, LinkMessage: template.Must(template.New("l").Parse("{{.URL}}")),
	}}
	svc, err := bridge.NewService(bridge.Options{Store: st, Brands: []*bridge.Brand{brand}, Clock: clock, PublicURL: "https://bridge.example"})
	require.NoError(t, err)
	ctx := context.Background()
	plat.next = []bridge.Event{{ID: "e1", Kind: bridge.EventConversationStarted, Conversation: "c1", Consumer: "anon"}}
	_, err = svc.HandleWebhook(ctx, "acme", "standard", bridge.WebhookRequest{})
	require.NoError(t, err)
	link, err := svc.RequestLink(ctx, "acme", "c1", true)
	require.NoError(t, err)

	ds, err := st.Claim(ctx, "w", 10, 0)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.True(t, ds[0].Entry.ExpiresAt.Equal(link.ExpiresAt), "the link message expires with its link")

	clock.Advance(10 * time.Minute)
	err = svc.Deliver(ctx, ds[0].Entry)
	require.ErrorIs(t, err, bridge.ErrEntryExpired)
	assert.True(t, bridge.IsPermanent(err), "dead-lettered at once, not retried")
	assert.Zero(t, plat.calls, "no platform call for an expired link")

	// Before expiry it is delivered.
	clock.Advance(-time.Second)
	require.NoError(t, svc.Deliver(ctx, ds[0].Entry))
	assert.Equal(t, 1, plat.calls)
}
