package liveperson_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson"
	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson/lptest"
	"github.com/stepup-bridge/stepup-bridge/adapters/outbound"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/memstore"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func platformConfig(f *lptest.Fake) config.LivePersonPlatform {
	fc := f.Config()
	return config.LivePersonPlatform{
		AccountID:      fc.Account,
		ClientID:       fc.AppClientID,
		ClientSecret:   config.Secret{Ref: "${LP_APP_SECRET}", Value: fc.AppSecret},
		CSDSURL:        f.URL(),
		ProfileTimeout: 2 * time.Second,
		Agent: config.LivePersonAgent{
			Username: fc.Username,
			Password: config.Secret{Ref: "${LP_BOT_PASSWORD}", Value: fc.Password},
		},
	}
}

func newAdapter(t *testing.T, f *lptest.Fake, cfg config.LivePersonPlatform, clk bridge.Clock) *liveperson.Adapter {
	t.Helper()
	a, err := liveperson.New(cfg, liveperson.Options{
		Outbound:  outbound.Options{Transport: f.Client().Transport, RetryMax: -1},
		TLSConfig: f.TLSConfig(),
		Clock:     clk,
	})
	require.NoError(t, err)
	return a
}

func entry(effect bridge.Effect, conv, text string) bridge.OutboxEntry {
	return bridge.OutboxEntry{ID: bridge.RandomString(8), Effect: effect, Key: bridge.Key{Brand: "acme", Conversation: conv}, Platform: "liveperson", Text: text}
}

func TestDeliver(t *testing.T) {
	f := lptest.NewTest(t, lptest.Config{})
	clk := newClock()
	a := newAdapter(t, f, platformConfig(f), clk)
	ctx := context.Background()
	f.OpenConversation("conv-1")

	note := entry(bridge.EffectNotifyAgents, "conv-1", "Verified: Alice Example (user-42) by Acme login, pwd + otp 🔐")
	require.NoError(t, a.Deliver(ctx, note))
	require.NoError(t, a.Deliver(ctx, entry(bridge.EffectRouteSkill, "conv-1", "4242")))
	require.NoError(t, a.Deliver(ctx, entry(bridge.EffectPostMessage, "conv-1", "Thanks, you are signed in.")))
	require.NoError(t, a.Deliver(ctx, entry(bridge.EffectAttachIdentity, "conv-1", "")), "LivePerson attached the identity itself")

	assert.Equal(t, []lptest.Message{
		{Conversation: "conv-1", Text: note.Text, Audience: liveperson.AudienceAgentsManagers, ExternalID: note.ID},
		{Conversation: "conv-1", Text: "Thanks, you are signed in.", Audience: "", ExternalID: f.Messages()[1].ExternalID},
	}, f.Messages())
	assert.Equal(t, []lptest.Transfer{{Conversation: "conv-1", Skill: "4242"}}, f.Transfers())
	logins, refreshes, csds, ws := f.Counts()
	assert.Equal(t, 1, logins, "one login, the session is reused")
	assert.Equal(t, 0, refreshes)
	assert.Equal(t, 1, csds, "domains are cached")
	assert.Equal(t, 3, ws, "one websocket per call; attach_identity makes none")

	// Past the refresh interval the session is refreshed, not replaced.
	clk.Advance(11 * time.Minute)
	require.NoError(t, a.Deliver(ctx, entry(bridge.EffectNotifyAgents, "conv-1", "again")))
	logins, refreshes, csds, _ = f.Counts()
	assert.Equal(t, 1, logins)
	assert.Equal(t, 1, refreshes)
	assert.Equal(t, 2, csds, "domains re-read after their TTL")

	// A session LivePerson dropped: the handshake fails, the bridge logs in again.
	f.ExpireSessions()
	require.NoError(t, a.Deliver(ctx, entry(bridge.EffectNotifyAgents, "conv-1", "after expiry")))
	logins, _, _, _ = f.Counts()
	assert.Equal(t, 2, logins)
	assert.Empty(t, f.Violations())
}

func TestDeliverFailures(t *testing.T) {
	f := lptest.NewTest(t, lptest.Config{})
	a := newAdapter(t, f, platformConfig(f), newClock())
	ctx := context.Background()
	f.OpenConversation("conv-1")

	// Unknown conversation: LivePerson answers 404; retrying cannot help.
	err := a.Deliver(ctx, entry(bridge.EffectNotifyAgents, "gone", "x"))
	require.Error(t, err)
	assert.True(t, bridge.IsPermanent(err), "%v", err)

	// A 401 mid-call: the session is dropped and the next call logs in again.
	logins, _, _, _ := f.Counts()
	f.FailNext(liveperson.ReqPublishEvent, 401)
	err = a.Deliver(ctx, entry(bridge.EffectNotifyAgents, "conv-1", "x"))
	require.Error(t, err)
	assert.False(t, bridge.IsPermanent(err), "%v", err)
	require.NoError(t, a.Deliver(ctx, entry(bridge.EffectNotifyAgents, "conv-1", "x")))
	after, _, _, _ := f.Counts()
	assert.Equal(t, logins+1, after)

	// A 5xx passes with time.
	f.FailNext(liveperson.ReqPublishEvent, 503)
	err = a.Deliver(ctx, entry(bridge.EffectNotifyAgents, "conv-1", "x"))
	require.Error(t, err)
	assert.False(t, bridge.IsPermanent(err), "%v", err)
	require.NoError(t, a.Deliver(ctx, entry(bridge.EffectNotifyAgents, "conv-1", "x")), "the retry succeeds")

	// Entries that cannot be delivered at all.
	err = a.Deliver(ctx, entry(bridge.EffectNotifyAgents, "conv-1", ""))
	assert.True(t, bridge.IsPermanent(err))
	err = a.Deliver(ctx, entry(bridge.Effect("teleport"), "conv-1", "x"))
	assert.True(t, bridge.IsPermanent(err))

	// Wrong bot password: the login is refused (4xx, permanent).
	cfg := platformConfig(f)
	cfg.Agent.Password.Value = "wrong"
	bad := newAdapter(t, f, cfg, newClock())
	err = bad.Deliver(ctx, entry(bridge.EffectNotifyAgents, "conv-1", "x"))
	require.Error(t, err)
	assert.True(t, bridge.IsPermanent(err))
	assert.NotContains(t, err.Error(), "wrong")

	// No agent user configured.
	cfg = platformConfig(f)
	cfg.Agent = config.LivePersonAgent{}
	none := newAdapter(t, f, cfg, newClock())
	err = none.Deliver(ctx, entry(bridge.EffectNotifyAgents, "conv-1", "x"))
	assert.ErrorIs(t, err, liveperson.ErrNoAgent)
	assert.True(t, bridge.IsPermanent(err))
	assert.Empty(t, f.Violations())
}

// webhook builds a signed request as LivePerson sends it.
func webhook(f *lptest.Fake, body string) bridge.WebhookRequest {
	return bridge.WebhookRequest{Header: f.Headers(f.Sign([]byte(body))), Body: []byte(body), Received: time.Now()}
}

func cqm(conv, consumer, state string, ts int64) string {
	return `{"kind":"notification","body":{"changes":[{"type":"UPSERT","result":{"convId":"` + conv + `","conversationDetails":{"skillId":"-1","participants":[{"id":"` + consumer +
		`","role":"CONSUMER"}],"dialogs":[{"dialogId":"` + conv + `","dialogType":"MAIN","channelType":"MESSAGING","state":"` + state + `"}],"brandId":"42257269","state":"` + state +
		`","stage":"` + state + `","startTs":1700000000000,"metaDataLastUpdateTs":` + itoa(ts) + `}}}]},"type":"cqm.ExConversationChangeNotification"}`
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestParseWebhookSwap(t *testing.T) {
	f := lptest.NewTest(t, lptest.Config{})
	clk := newClock()
	store := memstore.New(memstore.Options{Clock: clk})
	a := newAdapter(t, f, platformConfig(f), clk)
	a.BindBrand("acme", store)
	ctx := context.Background()
	const conv, anon, authed = "conv-9", "anon-consumer", "authed-consumer"
	require.Eventually(t, func() bool { l, _, _, _ := f.Counts(); return l == 1 }, 5*time.Second, 10*time.Millisecond,
		"binding the brand logs the agent in ahead of the first swap")

	// First sight: a plain observation.
	evs, err := a.ParseWebhook(ctx, webhook(f, cqm(conv, anon, "OPEN", 1000)))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, bridge.EventConversationStarted, evs[0].Kind)
	err = store.Observe(ctx, evs[0].ID, bridge.Observation{Key: bridge.Key{Brand: "acme", Conversation: conv}, Platform: "liveperson", Consumer: anon, Channel: evs[0].Channel, At: clk.Now()})
	require.NoError(t, err)

	// The same consumer again (an agent joined): still an observation, no profile read.
	evs, err = a.ParseWebhook(ctx, webhook(f, cqm(conv, anon, "OPEN", 2000)))
	require.NoError(t, err)
	assert.Equal(t, bridge.EventConversationStarted, evs[0].Kind)
	_, _, _, ws := f.Counts()
	assert.Zero(t, ws)

	// A new consumer without an authenticated customer id: not a step-up.
	evs, err = a.ParseWebhook(ctx, webhook(f, cqm(conv, "other-anon", "OPEN", 3000)))
	require.NoError(t, err)
	assert.Equal(t, bridge.EventConversationStarted, evs[0].Kind)

	// The authenticated consumer: an identity swap with the customer id.
	f.SetProfile(authed, lptest.AuthenticatedProfile("user-42"))
	evs, err = a.ParseWebhook(ctx, webhook(f, cqm(conv, authed, "OPEN", 4000)))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, bridge.EventIdentitySwap, evs[0].Kind)
	assert.Equal(t, authed, evs[0].Consumer)
	assert.Equal(t, "user-42", evs[0].Subject)
	assert.Equal(t, "lp:cqm:"+conv+":4000", evs[0].ID)

	// LivePerson's agent API failing: the webhook fails with ErrUnavailable (LivePerson retries).
	f.FailNext(liveperson.ReqGetUserProfile, 500)
	_, err = a.ParseWebhook(ctx, webhook(f, cqm(conv, authed, "OPEN", 5000)))
	assert.ErrorIs(t, err, bridge.ErrUnavailable)

	// Bad signature and wrong app install: unauthenticated, nothing read.
	req := webhook(f, cqm(conv, authed, "OPEN", 6000))
	req.Body = append(req.Body, ' ')
	_, err = a.ParseWebhook(ctx, req)
	assert.ErrorIs(t, err, liveperson.ErrBadSignature)
	req = webhook(f, cqm(conv, authed, "OPEN", 6000))
	req.Header.Set(liveperson.HeaderClientID, "someone-else")
	_, err = a.ParseWebhook(ctx, req)
	assert.ErrorIs(t, err, liveperson.ErrWrongClient)
	assert.Empty(t, f.Violations())
}

func TestNewRejectsBadConfig(t *testing.T) {
	f := lptest.NewTest(t, lptest.Config{})
	cfg := platformConfig(f)
	cfg.Connector = config.LivePersonConnector{Enabled: true, ClientID: "lp", ClientSecret: config.Secret{Value: "s3cret-value"}, Issuer: "https://acme.example",
		SigningKeys: []config.LivePersonKey{{PrivateKey: config.Secret{Value: "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n"}}}}
	_, err := liveperson.New(cfg, liveperson.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "signing_keys[0].private_key")
	assert.NotContains(t, err.Error(), "not a key")
}
