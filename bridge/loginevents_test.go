package bridge_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/memstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/storetest"
)

// fakeSource returns what a test queues, as a verified source would.
type fakeSource struct {
	recs []bridge.LoginRecord
	err  error
}

func (s *fakeSource) Parse(context.Context, bridge.WebhookRequest) ([]bridge.LoginRecord, error) {
	return s.recs, s.err
}

type challengeSource struct{ fakeSource }

func (challengeSource) Challenge(context.Context, bridge.WebhookRequest) (string, error) {
	return "echo", nil
}

type notReadySource struct{ fakeSource }

func (notReadySource) Ready(context.Context) error { return errors.New("keys not loaded") }

// failingStore fails the login writes on demand.
type failingStore struct {
	*memstore.Store
	failRecord bool
}

var errStoreDown = errors.New("store down")

func (s *failingStore) RecordLogin(ctx context.Context, rec bridge.LoginRecord, exp time.Time) error {
	if s.failRecord {
		return errStoreDown
	}
	return s.Store.RecordLogin(ctx, rec, exp)
}

type eventsFixture struct {
	clock *storetest.Clock
	store *failingStore
	svc   *bridge.Service
	src   *fakeSource
}

func newEvents(t *testing.T, extra map[string]bridge.LoginEventSource) *eventsFixture {
	clock := storetest.NewClock()
	st := &failingStore{Store: memstore.New(memstore.Options{Clock: clock})}
	src := &fakeSource{}
	sources := map[string]bridge.LoginEventSource{"src": src}
	for k, v := range extra {
		sources[k] = v
	}
	brand := &bridge.Brand{ID: "acme", Platforms: map[string]bridge.Platform{}, Policy: bridge.Policy{LoginWindow: 10 * time.Minute}, LoginEvents: sources}
	svc, err := bridge.NewService(bridge.Options{Store: st, Brands: []*bridge.Brand{brand}, Clock: clock})
	require.NoError(t, err)
	return &eventsFixture{clock: clock, store: st, svc: svc, src: src}
}

func rec(sub string, verified bool, at time.Time) bridge.LoginRecord {
	return bridge.LoginRecord{Verified: verified, At: at, Identity: bridge.Identity{Provider: "p", Issuer: "https://idp.example", Subject: sub, VerifiedAt: at}}
}

func (f *eventsFixture) latest(t *testing.T, sub string) *bridge.LoginRecord {
	t.Helper()
	r, err := f.store.Store.LatestLogin(t.Context(), "acme", sub, f.clock.Now())
	if errors.Is(err, bridge.ErrNotFound) {
		return nil
	}
	require.NoError(t, err)
	return &r
}

func TestHandleLoginEventRouting(t *testing.T) {
	f := newEvents(t, map[string]bridge.LoginEventSource{"okta": &challengeSource{}, "keys": &notReadySource{}})
	_, err := f.svc.HandleLoginEvent(t.Context(), "globex", "src", bridge.WebhookRequest{})
	require.ErrorIs(t, err, bridge.ErrUnknownBrand)
	_, err = f.svc.HandleLoginEvent(t.Context(), "acme", "nope", bridge.WebhookRequest{})
	require.ErrorIs(t, err, bridge.ErrUnknownLoginSource)

	v, err := f.svc.LoginEventChallenge(t.Context(), "acme", "okta", bridge.WebhookRequest{})
	require.NoError(t, err)
	assert.Equal(t, "echo", v)
	_, err = f.svc.LoginEventChallenge(t.Context(), "acme", "src", bridge.WebhookRequest{})
	require.ErrorIs(t, err, bridge.ErrNoChallenge, "a source without a challenge answers no GET")
	_, err = f.svc.LoginEventChallenge(t.Context(), "acme", "nope", bridge.WebhookRequest{})
	require.ErrorIs(t, err, bridge.ErrUnknownLoginSource)

	err = f.svc.LoginEventsReady(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "brand acme login events keys")

	f.src.err = bridge.ErrUnauthenticated
	f.src.recs = []bridge.LoginRecord{rec("s-1", true, f.clock.Now())}
	_, err = f.svc.HandleLoginEvent(t.Context(), "acme", "src", bridge.WebhookRequest{})
	require.ErrorIs(t, err, bridge.ErrUnauthenticated)
	assert.Nil(t, f.latest(t, "s-1"), "nothing recorded when the source refuses")
}

func TestHandleLoginEventFilters(t *testing.T) {
	f := newEvents(t, nil)
	now := f.clock.Now()
	f.src.recs = []bridge.LoginRecord{
		rec("fresh", true, now.Add(-time.Minute)),
		rec("", true, now),                                  // no subject
		rec("no-time", true, time.Time{}),                   // no time
		rec("stale", true, now.Add(-10*time.Minute)),        // outside the login window
		rec("future", true, now.Add(bridge.MaxEventSkew+1)), // beyond clock skew
		rec("skewed", false, now.Add(time.Minute)),          // within clock skew
	}
	res, err := f.svc.HandleLoginEvent(t.Context(), "acme", "src", bridge.WebhookRequest{})
	require.NoError(t, err)
	assert.Equal(t, bridge.LoginEventResult{Recorded: 2, Ignored: 4}, res)
	got := f.latest(t, "fresh")
	require.NotNil(t, got)
	assert.Equal(t, "acme", got.Brand)
	assert.Equal(t, "src", got.Source, "the service names the source")
	assert.True(t, got.Verified)
	for _, s := range []string{"no-time", "stale", "future"} {
		assert.Nil(t, f.latest(t, s), s)
	}
	assert.NotNil(t, f.latest(t, "skewed"))
}

func TestHandleLoginEventOrdering(t *testing.T) {
	f := newEvents(t, nil)
	now := f.clock.Now()
	send := func(r bridge.LoginRecord) bridge.LoginEventResult {
		f.src.recs = []bridge.LoginRecord{r}
		res, err := f.svc.HandleLoginEvent(t.Context(), "acme", "src", bridge.WebhookRequest{})
		require.NoError(t, err)
		return res
	}
	// A hint, then a newer hint: replaced. The same again: ignored.
	assert.Equal(t, 1, send(rec("s", false, now.Add(-3*time.Minute))).Recorded)
	assert.Equal(t, 1, send(rec("s", false, now.Add(-2*time.Minute))).Recorded)
	assert.Equal(t, 1, send(rec("s", false, now.Add(-2*time.Minute))).Ignored)
	// An older verified login replaces a newer hint: proof beats a hint.
	assert.Equal(t, 1, send(rec("s", true, now.Add(-4*time.Minute))).Recorded)
	require.True(t, f.latest(t, "s").Verified)
	// A newer hint never replaces the verified one.
	assert.Equal(t, 1, send(rec("s", false, now)).Ignored)
	// An older verified one does not roll back a newer verified one.
	assert.Equal(t, 1, send(rec("s", true, now.Add(-time.Minute))).Recorded)
	assert.Equal(t, 1, send(rec("s", true, now.Add(-5*time.Minute))).Ignored)
	assert.Equal(t, now.Add(-time.Minute), f.latest(t, "s").At)
}

func TestHandleLoginEventStoreDown(t *testing.T) {
	// One atomic store call decides; there is no read to fail first.
	f := newEvents(t, nil)
	f.store.failRecord = true
	f.src.recs = []bridge.LoginRecord{rec("s", true, f.clock.Now())}
	_, err := f.svc.HandleLoginEvent(t.Context(), "acme", "src", bridge.WebhookRequest{})
	require.ErrorIs(t, err, errStoreDown, "the IdP must retry: never acknowledged and dropped")
	assert.False(t, errors.Is(err, bridge.ErrUnauthenticated) || errors.Is(err, bridge.ErrMalformed))
}
