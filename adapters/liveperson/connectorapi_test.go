package liveperson_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson"
	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson/lptest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

const (
	connAppID     = "c0ffee00-0000-4000-8000-00000000c0de"
	connAppSecret = "connector-app-secret-5e6f7a8b"
	extConsumer   = "brand-channel-user-7731"
	lpConsumer    = "9f2c0d3e4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
	connConv      = "c4a1e2b3-0000-4000-8000-000000000001"
)

// connectorSetup is a brand whose channel is its own Connector API
// connector: the connector opened connConv for extConsumer (LivePerson's
// consumer lpConsumer) and put the ext_consumer_id in ctmrinfo.socialId.
func connectorSetup(t *testing.T) (*lptest.Fake, config.LivePersonPlatform, *clock) {
	t.Helper()
	return connectorSetupWith(t, lptest.Config{})
}

// connectorSetupWith: the clock starts at the real time, as the fake's
// tokens carry real exp values.
func connectorSetupWith(t *testing.T, lc lptest.Config) (*lptest.Fake, config.LivePersonPlatform, *clock) {
	t.Helper()
	lc.ConnectorClientID, lc.ConnectorSecret = connAppID, connAppSecret
	f := lptest.NewTest(t, lc)
	f.RegisterConsumer(extConsumer, lpConsumer)
	f.OpenConsumerConversation(connConv, lpConsumer)
	f.SetProfile(lpConsumer, map[string]any{"authenticatedData": map[string]any{"lp_sdes": []any{
		map[string]any{"type": "ctmrinfo", "info": map[string]any{"socialId": extConsumer, "ctype": "vip", "customerId": "set-by-the-connector"}},
	}}})
	cfg := platformConfig(f)
	cfg.ConnectorAPI = config.LivePersonConnectorAPI{
		Enabled: true, ClientID: connAppID, ClientSecret: config.Secret{Ref: "${LP_CONNECTOR_APP_SECRET}", Value: connAppSecret},
		ExtConsumerIDSDE: "ctmrinfo.socialId",
		SDEs:             map[string]string{"personal.firstname": "name", "personal.email": "email"},
	}
	return f, cfg, &clock{now: time.Now()}
}

func attachEntry(consumer string) bridge.OutboxEntry {
	e := entry(bridge.EffectAttachIdentity, connConv, "")
	e.Consumer = consumer
	e.Identity = &bridge.Identity{Provider: "Acme login", Issuer: "https://login.acme.example", Subject: "user-42", Name: "Alice Example",
		Email: "alice@example.test", EmailVerified: true, AMR: []string{"pwd"}, VerifiedAt: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	return e
}

func TestConnectorAPIAttachIdentity(t *testing.T) {
	f, cfg, clk := connectorSetup(t)
	a := newAdapter(t, f, cfg, clk)
	ctx := context.Background()

	require.NoError(t, a.Deliver(ctx, attachEntry(lpConsumer)))
	evs := f.ConsumerEvents()
	require.Len(t, evs, 1)
	ev := evs[0]
	assert.Equal(t, liveperson.SendSetUserProfile, ev.Type)
	assert.Equal(t, lpConsumer, ev.Consumer, "sent on behalf of the conversation's consumer")
	assert.Equal(t, extConsumer, ev.ExtConsumer)
	// The connector's ctmrinfo fields are kept; customerId is the verified
	// subject, whatever the connector put there.
	assert.JSONEq(t, `[{"type":"ctmrinfo","info":{"customerId":"user-42","socialId":"`+extConsumer+`","ctype":"vip"}},
		{"type":"personal","personal":{"firstname":"Alice Example","contacts":[{"email":"alice@example.test"}]}}]`, string(ev.SDEs))
	// The whole body: the SEND envelope of the samples, one request.
	var body map[string]any
	require.NoError(t, json.Unmarshal(ev.Raw, &body))
	assert.Equal(t, "req", body["kind"])
	assert.Equal(t, "userprofile.SetUserProfile", body["type"])
	assert.IsType(t, "", body["id"])
	assert.Len(t, body, 4)
	assert.Empty(t, f.Violations())
}

func TestConnectorAPIAppToken(t *testing.T) {
	f, cfg, clk := connectorSetup(t)
	a := newAdapter(t, f, cfg, clk)
	ctx := context.Background()
	deliver := func() error { return a.Deliver(ctx, attachEntry(lpConsumer)) }
	counts := func() (int, int, int) { return f.ConnectorCounts() }

	// Fetched once, reused.
	for range 3 {
		require.NoError(t, deliver())
	}
	tokens, jws, sends := counts()
	assert.Equal(t, 1, tokens, "one AppJWT for all calls")
	assert.Equal(t, 3, jws, "a ConsumerJWS per call")
	assert.Equal(t, 3, sends)
	_, _, csds, _ := f.Counts()
	assert.Equal(t, 1, csds, "one domain API read for agent and Connector API services")

	// Replaced before it expires (an hour), not after.
	clk.Advance(54 * time.Minute)
	require.NoError(t, deliver())
	tokens, _, _ = counts()
	assert.Equal(t, 1, tokens, "still valid for more than the margin")
	clk.Advance(2 * time.Minute)
	require.NoError(t, deliver())
	tokens, _, _ = counts()
	assert.Equal(t, 2, tokens, "renewed five minutes ahead of its exp")

	// LivePerson refuses the token early (401): fetched again, once.
	f.ExpireAppTokens()
	require.NoError(t, deliver())
	tokens, _, _ = counts()
	assert.Equal(t, 3, tokens)
	f.FailNext(lptest.EndpointSend, 401)
	require.NoError(t, deliver())
	tokens, _, _ = counts()
	assert.Equal(t, 4, tokens)

	// A 401 that persists is not chased: one new token, then the error.
	f.FailNext(lptest.EndpointSend, 401)
	f.FailNext(lptest.EndpointSend, 401)
	_, _, before := counts()
	err := deliver()
	require.Error(t, err)
	tokens, _, sends = counts()
	assert.Equal(t, 5, tokens)
	assert.Equal(t, before+2, sends)
	assert.True(t, bridge.IsPermanent(err), "%v", err)
	assert.Empty(t, f.Violations())
}

func TestConnectorAPIShortLivedToken(t *testing.T) {
	// A Sentinel that issues 6-minute tokens: each is used for half its
	// life, not until "exp minus five minutes" (one minute).
	f, cfg, clk := connectorSetupWith(t, lptest.Config{AppTokenTTL: 6 * time.Minute})
	a := newAdapter(t, f, cfg, clk)
	ctx := context.Background()
	require.NoError(t, a.Deliver(ctx, attachEntry(lpConsumer)))
	clk.Advance(2 * time.Minute)
	require.NoError(t, a.Deliver(ctx, attachEntry(lpConsumer)))
	tokens, _, _ := f.ConnectorCounts()
	assert.Equal(t, 1, tokens)
	clk.Advance(90 * time.Second)
	require.NoError(t, a.Deliver(ctx, attachEntry(lpConsumer)))
	tokens, _, _ = f.ConnectorCounts()
	assert.Equal(t, 2, tokens)
	assert.Empty(t, f.Violations())
}

func TestConnectorAPIFailures(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(f *lptest.Fake, cfg *config.LivePersonPlatform)
		consumer  string
		permanent bool
		target    error
		noSend    bool
	}{
		{name: "SEND 400", setup: func(f *lptest.Fake, _ *config.LivePersonPlatform) { f.FailNext(lptest.EndpointSend, 400) }, permanent: true},
		{name: "SEND 404", setup: func(f *lptest.Fake, _ *config.LivePersonPlatform) { f.FailNext(lptest.EndpointSend, 404) }, permanent: true},
		{name: "SEND 503", setup: func(f *lptest.Fake, _ *config.LivePersonPlatform) { f.FailNext(lptest.EndpointSend, 503) }},
		{name: "SEND 500", setup: func(f *lptest.Fake, _ *config.LivePersonPlatform) { f.FailNext(lptest.EndpointSend, 500) }},
		{name: "SEND 429", setup: func(f *lptest.Fake, _ *config.LivePersonPlatform) { f.FailNext(lptest.EndpointSend, 429) }},
		{name: "Sentinel down", setup: func(f *lptest.Fake, _ *config.LivePersonPlatform) { f.FailNext(lptest.EndpointAppToken, 502) }, noSend: true},
		{name: "IdP down", setup: func(f *lptest.Fake, _ *config.LivePersonPlatform) { f.FailNext(lptest.EndpointConsumerJWS, 503) }, noSend: true},
		{name: "wrong connector secret", setup: func(_ *lptest.Fake, cfg *config.LivePersonPlatform) {
			cfg.ConnectorAPI.ClientSecret.Value = "not-the-secret"
		}, permanent: true, noSend: true},
		{name: "platform app install is not the connector's", setup: func(_ *lptest.Fake, cfg *config.LivePersonPlatform) {
			cfg.ConnectorAPI.ClientID, cfg.ConnectorAPI.ClientSecret = "", config.Secret{}
		}, permanent: true, noSend: true},
		{name: "ext_consumer_id of another consumer", setup: func(f *lptest.Fake, _ *config.LivePersonPlatform) {
			f.RegisterConsumer(extConsumer, strings.Repeat("ab", 32))
		}, permanent: true, target: liveperson.ErrNotConsumersJWS, noSend: true},
		{name: "profile without the ext_consumer_id", setup: func(f *lptest.Fake, _ *config.LivePersonPlatform) {
			f.SetProfile(lpConsumer, lptest.AuthenticatedProfile("someone"))
		}, permanent: true, noSend: true},
		{name: "profile read fails", setup: func(f *lptest.Fake, _ *config.LivePersonPlatform) { f.FailNext(liveperson.ReqGetUserProfile, 503) }, noSend: true},
		{name: "no consumer on the entry", consumer: "-", permanent: true, noSend: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, cfg, clk := connectorSetup(t)
			if tc.setup != nil {
				tc.setup(f, &cfg)
			}
			a := newAdapter(t, f, cfg, clk)
			e := attachEntry(lpConsumer)
			if tc.consumer == "-" {
				e.Consumer = ""
			}
			err := a.Deliver(context.Background(), e)
			require.Error(t, err)
			assert.Equal(t, tc.permanent, bridge.IsPermanent(err), "%v", err)
			if tc.target != nil {
				assert.ErrorIs(t, err, tc.target)
			}
			for _, secret := range []string{connAppSecret, "not-the-secret", f.Config().AppSecret, "eyJ"} {
				assert.NotContains(t, err.Error(), secret, "errors carry no secret or token")
			}
			if tc.noSend {
				_, _, sends := f.ConnectorCounts()
				assert.Zero(t, sends)
			}
			assert.Empty(t, f.ConsumerEvents())
			if !tc.permanent {
				// Retryable: the next delivery goes through.
				require.NoError(t, a.Deliver(context.Background(), e))
				assert.Len(t, f.ConsumerEvents(), 1)
			}
			assert.Empty(t, f.Violations())
		})
	}
}

// TestConnectorAPIAlreadyAttached: a profile whose authenticated
// customerId is already the subject (LivePerson's own step-up of a web
// consumer of the same brand, or an earlier delivery whose answer was lost)
// needs no SEND.
func TestConnectorAPIAlreadyAttached(t *testing.T) {
	f, cfg, clk := connectorSetup(t)
	a := newAdapter(t, f, cfg, clk)
	f.SetProfile(lpConsumer, lptest.AuthenticatedProfile("user-42"))
	require.NoError(t, a.Deliver(context.Background(), attachEntry(lpConsumer)))
	tokens, jws, sends := f.ConnectorCounts()
	assert.Zero(t, tokens+jws+sends)
	assert.Empty(t, f.Violations())
}

// TestConnectorAPIJWS: the fake's AppJWTs are real RS256 JWTs with the
// claims of sentinel.appjwt.decoded-payload.json, so what the client reads
// of them (exp) is what LivePerson sends.
func TestConnectorAPIJWS(t *testing.T) {
	f, _, _ := connectorSetup(t)
	claims := jwt.MapClaims{}
	// The fake signs AppJWTs with its key; verify one it issues to be sure
	// the client is handed a real, verifiable token.
	tok := issueAppToken(t, f)
	_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return f.PublicKey(), nil }, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer("Sentinel"), jwt.WithAudience(f.Config().Account))
	require.NoError(t, err)
	assert.Equal(t, connAppID, claims["azp"])
	assert.Equal(t, "msg.consumer", claims["scope"])
}

func issueAppToken(t *testing.T, f *lptest.Fake) string {
	t.Helper()
	req, err := newFormRequest(f.URL()+"/sentinel/api/account/"+f.Config().Account+"/app/token?v=1.0&grant_type=client_credentials",
		"client_id="+connAppID+"&client_secret="+connAppSecret)
	require.NoError(t, err)
	resp, err := f.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(t, "Bearer", out["token_type"])
	if out["access_token"] == "" {
		require.Fail(t, "no token", errors.New("empty"))
	}
	return out["access_token"]
}

func newFormRequest(u, body string) (*http.Request, error) {
	r, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r, nil
}

// TestPostMessageNeedsAgent: without the agent user a message for the
// consumer cannot be delivered, and the Connector API is not a way round.
func TestPostMessageNeedsAgent(t *testing.T) {
	f := lptest.NewTest(t, lptest.Config{})
	cfg := platformConfig(f)
	cfg.Agent = config.LivePersonAgent{}
	a := newAdapter(t, f, cfg, newClock())
	err := a.Deliver(context.Background(), entry(bridge.EffectPostMessage, connConv, "https://bridge.example/login/acme/x"))
	require.Error(t, err)
	assert.True(t, bridge.IsPermanent(err))
	assert.ErrorIs(t, err, liveperson.ErrNoAgent)
	assert.Contains(t, err.Error(), "speaks as the consumer")
	_, _, sends := f.ConnectorCounts()
	assert.Zero(t, sends)
	assert.Empty(t, f.Violations())
}
