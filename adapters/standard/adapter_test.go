package standard_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/outbound"
	"github.com/stepup-bridge/stepup-bridge/adapters/standard"
	"github.com/stepup-bridge/stepup-bridge/adapters/standard/standardtest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration // added after each Now
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.now
	c.now = c.now.Add(c.step)
	return t
}

var t0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

func secrets(s ...string) []config.Secret {
	out := make([]config.Secret, len(s))
	for i, v := range s {
		out[i] = config.Secret{Ref: "${SECRET_" + strconv.Itoa(i) + "}", Value: v}
	}
	return out
}

func newInbound(t *testing.T) *standard.Adapter {
	t.Helper()
	a, err := standard.New(config.StandardPlatform{WebhookSecrets: secrets(secretA, secretB)},
		standard.Options{Clock: &fakeClock{now: t0}})
	require.NoError(t, err)
	return a
}

func webhook(secret, id string, ts time.Time, body []byte) bridge.WebhookRequest {
	return bridge.WebhookRequest{
		Header:   standardtest.SignedRequest(secret, id, ts, body),
		Body:     body,
		Origin:   "https://bridge.example",
		Target:   "/webhooks/acme/standard",
		Received: ts,
	}
}

func TestNewValidates(t *testing.T) {
	_, err := standard.New(config.StandardPlatform{
		WebhookSecrets: secrets("whsec_short", secretA, "plain-text-secret-value-that-is-long"),
		Tolerance:      -time.Second,
		Endpoint:       "ftp://brand.example/hook?token=topsecret",
	}, standard.Options{})
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{"webhook_secrets[0]", "webhook_secrets[2]", "tolerance", "endpoint: must be an absolute http(s) URL", "endpoint_secret: required"} {
		assert.Contains(t, msg, want)
	}
	assert.NotContains(t, msg, "webhook_secrets[1]")
	for _, leak := range []string{"short", "plain-text", "topsecret"} {
		assert.NotContains(t, msg, leak)
	}

	_, err = standard.New(config.StandardPlatform{}, standard.Options{})
	assert.ErrorContains(t, err, "webhook_secrets: at least one secret is required")

	a, err := standard.New(config.StandardPlatform{WebhookSecrets: secrets(secretA)}, standard.Options{})
	require.NoError(t, err, "an endpoint is optional (inbound only)")
	err = a.Deliver(t.Context(), bridge.OutboxEntry{ID: "e1", Effect: bridge.EffectPostMessage, Key: bridge.Key{Brand: "acme", Conversation: "c1"}, Text: "hi"})
	assert.ErrorIs(t, err, standard.ErrNoEndpoint)
	assert.True(t, bridge.IsPermanent(err))
}

func TestParseWebhookEvents(t *testing.T) {
	a := newInbound(t)
	at := t0.Add(-2 * time.Second)
	cases := []struct {
		name string
		body []byte
		want []bridge.Event
	}{
		{
			"conversation.started",
			standardtest.Body(standard.TypeConversationStarted, at, standardtest.ConversationStarted{ConversationID: "c1", ConsumerID: "u1", Channel: "web"}),
			[]bridge.Event{{ID: "msg_1", Kind: bridge.EventConversationStarted, Conversation: "c1", Consumer: "u1", Channel: "web", At: at}},
		},
		{
			"message.created by consumer",
			standardtest.Body(standard.TypeMessageCreated, at, standardtest.MessageCreated{ConversationID: "c1", ConsumerID: "u1", Channel: "whatsapp", Author: standardtest.Author{Role: "consumer", ID: "u1"}, Text: "123 456"}),
			[]bridge.Event{{ID: "msg_1", Kind: bridge.EventConsumerMessage, Conversation: "c1", Consumer: "u1", Channel: "whatsapp", Text: "123 456", At: at}},
		},
		{
			"message.created by agent",
			standardtest.Body(standard.TypeMessageCreated, at, standardtest.MessageCreated{ConversationID: "c1", ConsumerID: "u1", Author: standardtest.Author{Role: "agent", ID: "agent-7"}, Text: "/verify"}),
			[]bridge.Event{{ID: "msg_1", Kind: bridge.EventAgentMessage, Conversation: "c1", Consumer: "u1", Text: "/verify", At: at}},
		},
		{
			"message.created by bot is ignored",
			standardtest.Body(standard.TypeMessageCreated, at, standardtest.MessageCreated{ConversationID: "c1", Author: standardtest.Author{Role: "bot"}, Text: "hello"}),
			nil,
		},
		{
			"message.created by system is ignored",
			standardtest.Body(standard.TypeMessageCreated, at, standardtest.MessageCreated{ConversationID: "c1", Author: standardtest.Author{Role: "system"}}),
			nil,
		},
		{
			"message.created by an unknown role is ignored",
			standardtest.Body(standard.TypeMessageCreated, at, standardtest.MessageCreated{ConversationID: "c1", Author: standardtest.Author{Role: "supervisor"}}),
			nil,
		},
		{
			"conversation.closed",
			standardtest.Body(standard.TypeConversationClosed, at, standardtest.ConversationClosed{ConversationID: "c1"}),
			[]bridge.Event{{ID: "msg_1", Kind: bridge.EventConversationClosed, Conversation: "c1", At: at}},
		},
		{
			"unknown type is ignored",
			[]byte(`{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1f81eb52"}}`),
			nil,
		},
		{
			"unknown type with any data is ignored",
			[]byte(`{"type":"invoice.paid","data":[1,2,3]}`),
			nil,
		},
		{
			"unknown keys are ignored",
			[]byte(`{"type":"conversation.closed","timestamp":"2025-03-14T15:09:24Z","version":2,"data":{"conversation_id":"c1","reason":"resolved","extra":{"a":1}}}`),
			[]bridge.Event{{ID: "msg_1", Kind: bridge.EventConversationClosed, Conversation: "c1", At: at}},
		},
		{
			"timestamp with offset and fraction",
			[]byte(`{"type":"conversation.closed","timestamp":"2025-03-14T16:09:24.5+01:00","data":{"conversation_id":"c1"}}`),
			[]bridge.Event{{ID: "msg_1", Kind: bridge.EventConversationClosed, Conversation: "c1", At: at.Add(500 * time.Millisecond)}},
		},
		{
			"no timestamp: webhook-timestamp is used",
			[]byte(`{"type":"conversation.closed","data":{"conversation_id":"c1"}}`),
			[]bridge.Event{{ID: "msg_1", Kind: bridge.EventConversationClosed, Conversation: "c1", At: t0}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			events, err := a.ParseWebhook(t.Context(), webhook(secretA, "msg_1", t0, tc.body))
			require.NoError(t, err)
			assert.Equal(t, tc.want, events)
		})
	}
}

func TestParseWebhookTextPreserved(t *testing.T) {
	a := newInbound(t)
	for _, text := range []string{
		"Hallo, ich heiße Zoë 👋🏽 — 你好 — مرحبا",
		"family: 👨‍👩‍👧‍👦, flag: 🇧🇪, combining: e\u0301",
		"<script>&amp;</script>\t\"quoted\"\n\\",
		strings.Repeat("🙂", standard.MaxTextRunes),
	} {
		body := standardtest.Body(standard.TypeMessageCreated, t0, standardtest.MessageCreated{
			ConversationID: "c1", Author: standardtest.Author{Role: "consumer"}, Text: text})
		events, err := a.ParseWebhook(t.Context(), webhook(secretA, "msg_1", t0, body))
		require.NoError(t, err)
		require.Len(t, events, 1)
		assert.Equal(t, []byte(text), []byte(events[0].Text), "byte-exact")
	}
	// JSON escapes decode to the same bytes.
	body := []byte(`{"type":"message.created","data":{"conversation_id":"c1","author":{"role":"consumer"},"text":"\ud83d\udc4b caf\u00e9"}}`)
	events, err := a.ParseWebhook(t.Context(), webhook(secretA, "msg_1", t0, body))
	require.NoError(t, err)
	assert.Equal(t, "👋 café", events[0].Text)
}

func TestParseWebhookMalformed(t *testing.T) {
	a := newInbound(t)
	long := strings.Repeat("x", standard.MaxIDBytes+1)
	cases := []struct {
		name, body, want string
	}{
		{"not JSON", `{"type":`, "body: invalid JSON"},
		{"trailing data", `{"type":"conversation.closed","data":{"conversation_id":"c1"}} {}`, "body: invalid JSON"},
		{"array", `[1,2]`, "body: must be a JSON object"},
		{"empty body", ``, "body: invalid JSON"},
		{"no type", `{"data":{"conversation_id":"c1"}}`, "type: required"},
		{"type not a string", `{"type":5,"data":{}}`, "type: must be a JSON string, not number"},
		{"no data", `{"type":"conversation.started"}`, "data: required"},
		{"data null", `{"type":"conversation.started","data":null}`, "data: required"},
		{"data not an object", `{"type":"conversation.started","data":"c1"}`, "data: must be an object"},
		{"no conversation_id", `{"type":"conversation.started","data":{"consumer_id":"u1"}}`, "data.conversation_id: required"},
		{"empty conversation_id", `{"type":"conversation.closed","data":{"conversation_id":""}}`, "data.conversation_id: required"},
		{"conversation_id a number", `{"type":"conversation.closed","data":{"conversation_id":42}}`, "data.conversation_id: must be a JSON string, not number"},
		{"conversation_id too long", `{"type":"conversation.closed","data":{"conversation_id":"` + long + `"}}`, "data.conversation_id: 257 bytes, at most 256 allowed"},
		{"consumer_id control chars", `{"type":"conversation.started","data":{"conversation_id":"c1","consumer_id":"u\n1"}}`, "data.consumer_id: contains control characters"},
		{"channel too long", `{"type":"conversation.started","data":{"conversation_id":"c1","channel":"` + long + `"}}`, "data.channel: 257 bytes"},
		{"bad timestamp", `{"type":"conversation.closed","timestamp":"yesterday","data":{"conversation_id":"c1"}}`, "timestamp: not an RFC 3339 date-time"},
		{"timestamp a number", `{"type":"conversation.closed","timestamp":1700000000,"data":{"conversation_id":"c1"}}`, "timestamp: must be a JSON string, not number"},
		{"message without author", `{"type":"message.created","data":{"conversation_id":"c1","text":"hi"}}`, "data.author: required"},
		{"author not an object", `{"type":"message.created","data":{"conversation_id":"c1","author":"consumer"}}`, "data.author: must be a JSON object, not string"},
		{"author without role", `{"type":"message.created","data":{"conversation_id":"c1","author":{"id":"u1"}}}`, "data.author.role: required"},
		{"role not a string", `{"type":"message.created","data":{"conversation_id":"c1","author":{"role":true}}}`, "data.author.role: must be a JSON string, not bool"},
		{"text too long", `{"type":"message.created","data":{"conversation_id":"c1","author":{"role":"consumer"},"text":"` + strings.Repeat("é", standard.MaxTextRunes+1) + `"}}`, "data.text: 4097 characters, at most 4096 allowed"},
		{"text not a string", `{"type":"message.created","data":{"conversation_id":"c1","author":{"role":"consumer"},"text":["a"]}}`, "data.text: must be a JSON string, not array"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			events, err := a.ParseWebhook(t.Context(), webhook(secretA, "msg_1", t0, []byte(tc.body)))
			require.Error(t, err)
			assert.ErrorIs(t, err, bridge.ErrMalformed)
			assert.NotErrorIs(t, err, bridge.ErrUnauthenticated)
			assert.Contains(t, err.Error(), tc.want)
			assert.Nil(t, events)
		})
	}

	t.Run("webhook-id too long", func(t *testing.T) {
		body := standardtest.Body(standard.TypeConversationClosed, t0, standardtest.ConversationClosed{ConversationID: "c1"})
		_, err := a.ParseWebhook(t.Context(), webhook(secretA, long, t0, body))
		assert.ErrorIs(t, err, bridge.ErrMalformed)
		assert.ErrorContains(t, err, "webhook-id: 257 bytes")
	})
}

func TestParseWebhookAuthenticatesFirst(t *testing.T) {
	a := newInbound(t)
	body := []byte(`{"type":`) // malformed, but unsigned: must be unauthenticated
	req := webhook(secretA, "msg_1", t0, []byte("{}"))
	req.Body = body
	_, err := a.ParseWebhook(t.Context(), req)
	assert.ErrorIs(t, err, bridge.ErrUnauthenticated)
	assert.ErrorIs(t, err, standard.ErrBadSignature)
	assert.NotErrorIs(t, err, bridge.ErrMalformed)

	good := standardtest.Body(standard.TypeConversationClosed, t0, standardtest.ConversationClosed{ConversationID: "c1"})
	for name, tc := range map[string]struct {
		req  bridge.WebhookRequest
		want error
	}{
		"stale":              {webhook(secretA, "msg_1", t0.Add(-10*time.Minute), good), standard.ErrTimestampTooOld},
		"future":             {webhook(secretA, "msg_1", t0.Add(10*time.Minute), good), standard.ErrTimestampTooNew},
		"unknown secret":     {webhook(standardtest.NewSecret(), "msg_1", t0, good), standard.ErrBadSignature},
		"second secret (ok)": {webhook(secretB, "msg_1", t0, good), nil},
		"no headers":         {bridge.WebhookRequest{Header: http.Header{}, Body: good}, standard.ErrMissingHeader},
	} {
		t.Run(name, func(t *testing.T) {
			events, err := a.ParseWebhook(t.Context(), tc.req)
			if tc.want == nil {
				require.NoError(t, err)
				assert.Len(t, events, 1)
				return
			}
			assert.ErrorIs(t, err, bridge.ErrUnauthenticated)
			assert.ErrorIs(t, err, tc.want)
		})
	}
}

func TestParseWebhookTolerance(t *testing.T) {
	a, err := standard.New(config.StandardPlatform{WebhookSecrets: secrets(secretA), Tolerance: 30 * time.Second},
		standard.Options{Clock: &fakeClock{now: t0}})
	require.NoError(t, err)
	body := standardtest.Body(standard.TypeConversationClosed, t0, standardtest.ConversationClosed{ConversationID: "c1"})
	_, err = a.ParseWebhook(t.Context(), webhook(secretA, "msg_1", t0.Add(-31*time.Second), body))
	assert.ErrorIs(t, err, standard.ErrTimestampTooOld)
	_, err = a.ParseWebhook(t.Context(), webhook(secretA, "msg_1", t0.Add(-30*time.Second), body))
	assert.NoError(t, err)
}

// Outbound.

func outboundAdapter(t *testing.T, endpoint, secret string, o standard.Options) *standard.Adapter {
	t.Helper()
	if o.Outbound.RetryWaitMin == 0 {
		o.Outbound.RetryWaitMin = time.Millisecond
		o.Outbound.RetryWaitMax = 5 * time.Millisecond
	}
	a, err := standard.New(config.StandardPlatform{
		WebhookSecrets: secrets(secretA),
		Endpoint:       endpoint,
		EndpointSecret: config.Secret{Ref: "${ENDPOINT_SECRET}", Value: secret},
	}, o)
	require.NoError(t, err)
	return a
}

func identity() *bridge.Identity {
	return &bridge.Identity{
		Provider: "Acme login", Issuer: "https://login.acme.example", Subject: "248289761001",
		Name: "Zoë Ñúñez 👩🏽‍💻", Email: "zoe@acme.example", EmailVerified: true,
		AMR: []string{"pwd", "otp"}, ACR: "urn:acme:loa:2",
		AuthTime:   t0.Add(-time.Minute),
		VerifiedAt: t0,
		Claims:     map[string]string{"customer_id": "C-1001"},
	}
}

func entry(id string, effect bridge.Effect, text string, ident *bridge.Identity) bridge.OutboxEntry {
	return bridge.OutboxEntry{
		ID: id, Effect: effect, Key: bridge.Key{Brand: "acme", Conversation: "conv-1"},
		Platform: "standard", Consumer: "consumer-1", Text: text, Identity: ident, CreatedAt: t0,
	}
}

func TestDeliverEachEffect(t *testing.T) {
	fake := standardtest.NewServer(t, standardtest.NewSecret())
	a := outboundAdapter(t, fake.URL+"/stepup/events", fake.Secret(), standard.Options{})

	noAuthTime := identity()
	noAuthTime.AuthTime = time.Time{}
	noAuthTime.AMR, noAuthTime.Claims = nil, nil

	entries := []bridge.OutboxEntry{
		entry("e1", bridge.EffectPostMessage, "Please log in: https://bridge.example/login/acme/AAAA 🔐", nil),
		entry("e2", bridge.EffectAttachIdentity, "", identity()),
		entry("e3", bridge.EffectNotifyAgents, "Verified: Zoë (Acme login, pwd+otp)", identity()),
		entry("e4", bridge.EffectRouteSkill, "authenticated-support", nil),
		entry("e5", bridge.EffectNotifyAgents, "Verified (no identity details)", nil),
		entry("e6", bridge.EffectAttachIdentity, "", noAuthTime),
	}
	for _, e := range entries {
		require.NoError(t, a.Deliver(t.Context(), e), e.Effect)
	}
	require.Empty(t, fake.Violations())
	calls := fake.Calls()
	require.Len(t, calls, len(entries))

	assert.Equal(t, "e1", calls[0].ID)
	assert.Equal(t, standard.TypeMessagePost, calls[0].Type)
	assert.Equal(t, t0, calls[0].Timestamp)
	assert.Equal(t, &standardtest.MessagePost{ConversationID: "conv-1", ConsumerID: "consumer-1",
		Text: "Please log in: https://bridge.example/login/acme/AAAA 🔐", Audience: "consumer"}, calls[0].Message)

	authTime := t0.Add(-time.Minute)
	wantIdentity := standardtest.Identity{
		Provider: "Acme login", Issuer: "https://login.acme.example", Subject: "248289761001",
		Name: "Zoë Ñúñez 👩🏽‍💻", Email: "zoe@acme.example", EmailVerified: true,
		AMR: []string{"pwd", "otp"}, ACR: "urn:acme:loa:2", AuthTime: &authTime, VerifiedAt: t0,
		Claims: map[string]string{"customer_id": "C-1001"},
	}
	assert.Equal(t, standard.TypeIdentityAttach, calls[1].Type)
	assert.Equal(t, &standardtest.IdentityAttach{ConversationID: "conv-1", ConsumerID: "consumer-1", Identity: wantIdentity}, calls[1].Message)

	assert.Equal(t, standard.TypeAgentsNotify, calls[2].Type)
	assert.Equal(t, &standardtest.AgentsNotify{ConversationID: "conv-1", ConsumerID: "consumer-1",
		Text: "Verified: Zoë (Acme login, pwd+otp)", Audience: "agents", Identity: &wantIdentity}, calls[2].Message)

	assert.Equal(t, standard.TypeSkillRoute, calls[3].Type)
	assert.Equal(t, &standardtest.SkillRoute{ConversationID: "conv-1", ConsumerID: "consumer-1", Skill: "authenticated-support"}, calls[3].Message)

	assert.Nil(t, calls[4].Message.(*standardtest.AgentsNotify).Identity)

	// Stable shape: unknown auth_time is null, amr [] and claims {}.
	var raw struct {
		Identity map[string]json.RawMessage `json:"identity"`
	}
	require.NoError(t, json.Unmarshal(calls[5].Data, &raw))
	assert.JSONEq(t, `null`, string(raw.Identity["auth_time"]))
	assert.JSONEq(t, `[]`, string(raw.Identity["amr"]))
	assert.JSONEq(t, `{}`, string(raw.Identity["claims"]))

	// Non-ASCII text goes out as UTF-8, not escaped; HTML is not escaped.
	assert.Contains(t, string(calls[0].Body), "🔐")
}

func TestDeliverBodyIsDocumented(t *testing.T) {
	// The README example, byte for byte (keys in this order, no spaces).
	fake := standardtest.NewServer(t, standardtest.NewSecret())
	a := outboundAdapter(t, fake.URL, fake.Secret(), standard.Options{})
	require.NoError(t, a.Deliver(t.Context(), entry("e1", bridge.EffectRouteSkill, "authenticated-support", nil)))
	assert.Equal(t,
		`{"type":"stepup.skill.route","timestamp":"2025-03-14T15:09:26Z","data":{"conversation_id":"conv-1","consumer_id":"consumer-1","skill":"authenticated-support"}}`,
		string(fake.Calls()[0].Body))
}

func TestDeliverIsIdempotentPerEntry(t *testing.T) {
	fake := standardtest.NewServer(t, standardtest.NewSecret())
	a := outboundAdapter(t, fake.URL, fake.Secret(), standard.Options{})
	e := entry("e1", bridge.EffectNotifyAgents, "Verified", identity())
	require.NoError(t, a.Deliver(t.Context(), e))
	require.NoError(t, a.Deliver(t.Context(), e), "the outbox may deliver twice")
	assert.Len(t, fake.Calls(), 1)
	assert.Equal(t, 1, fake.Duplicates(), "same webhook-id, same body")
}

func TestDeliverFailures(t *testing.T) {
	t.Run("400 is permanent", func(t *testing.T) {
		fake := standardtest.NewServer(t, standardtest.NewSecret())
		a := outboundAdapter(t, fake.URL, fake.Secret(), standard.Options{})
		fake.FailNext(1, http.StatusBadRequest)
		err := a.Deliver(t.Context(), entry("e1", bridge.EffectPostMessage, "hi", nil))
		require.Error(t, err)
		assert.True(t, bridge.IsPermanent(err))
		assert.Equal(t, 1, fake.Requests(), "a 400 is never retried")
		assert.Contains(t, err.Error(), "status 400")
		assert.Contains(t, err.Error(), "post_message e1")
	})
	t.Run("503 is retryable", func(t *testing.T) {
		fake := standardtest.NewServer(t, standardtest.NewSecret())
		a := outboundAdapter(t, fake.URL, fake.Secret(), standard.Options{})
		fake.FailNext(10, http.StatusServiceUnavailable)
		err := a.Deliver(t.Context(), entry("e1", bridge.EffectPostMessage, "hi", nil))
		require.Error(t, err)
		assert.False(t, bridge.IsPermanent(err))
		var oe *outbound.Error
		require.ErrorAs(t, err, &oe)
		assert.Equal(t, 503, oe.Status)
		assert.Equal(t, 1+outbound.DefaultRetryMax, fake.Requests(), "webhook-id is an idempotency key: retried in-process")
		assert.Empty(t, fake.Calls())
	})
	t.Run("503 then success", func(t *testing.T) {
		fake := standardtest.NewServer(t, standardtest.NewSecret())
		a := outboundAdapter(t, fake.URL, fake.Secret(), standard.Options{})
		fake.FailNext(1, http.StatusServiceUnavailable)
		require.NoError(t, a.Deliver(t.Context(), entry("e1", bridge.EffectPostMessage, "hi", nil)))
		assert.Equal(t, 2, fake.Requests())
		assert.Len(t, fake.Calls(), 1)
	})
	t.Run("hang is a retryable timeout", func(t *testing.T) {
		fake := standardtest.NewServer(t, standardtest.NewSecret())
		a := outboundAdapter(t, fake.URL, fake.Secret(), standard.Options{
			CallTimeout: 300 * time.Millisecond,
			Outbound:    outbound.Options{Timeout: 100 * time.Millisecond, RetryMax: -1},
		})
		fake.HangNext(1)
		start := time.Now()
		err := a.Deliver(t.Context(), entry("e1", bridge.EffectPostMessage, "hi", nil))
		require.Error(t, err)
		assert.Less(t, time.Since(start), 2*time.Second)
		assert.False(t, bridge.IsPermanent(err))
		assert.True(t, errors.Is(err, context.DeadlineExceeded), err.Error())
		// The outbox retries later: the same entry goes through.
		require.NoError(t, a.Deliver(t.Context(), entry("e1", bridge.EffectPostMessage, "hi", nil)))
		assert.Len(t, fake.Calls(), 1)
	})
	t.Run("endpoint down is retryable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		a := outboundAdapter(t, url+"/hook?key=topsecret", standardtest.NewSecret(), standard.Options{})
		err := a.Deliver(t.Context(), entry("e1", bridge.EffectPostMessage, "hi", nil))
		require.Error(t, err)
		assert.False(t, bridge.IsPermanent(err))
		assert.NotContains(t, err.Error(), "topsecret")
	})
}

func TestDeliverRejectsBadEntries(t *testing.T) {
	fake := standardtest.NewServer(t, standardtest.NewSecret())
	a := outboundAdapter(t, fake.URL, fake.Secret(), standard.Options{})
	noSubject := identity()
	noSubject.Subject = ""
	for name, e := range map[string]bridge.OutboxEntry{
		"no id":                   entry("", bridge.EffectPostMessage, "hi", nil),
		"id with newline":         entry("e\n1", bridge.EffectPostMessage, "hi", nil),
		"no conversation":         {ID: "e1", Effect: bridge.EffectPostMessage, Text: "hi"},
		"post without text":       entry("e1", bridge.EffectPostMessage, "", nil),
		"attach without identity": entry("e1", bridge.EffectAttachIdentity, "", nil),
		"attach without subject":  entry("e1", bridge.EffectAttachIdentity, "", noSubject),
		"notify without text":     entry("e1", bridge.EffectNotifyAgents, "", identity()),
		"route without skill":     entry("e1", bridge.EffectRouteSkill, "", nil),
		"unknown effect":          entry("e1", bridge.Effect("teleport"), "x", nil),
	} {
		t.Run(name, func(t *testing.T) {
			err := a.Deliver(t.Context(), e)
			require.Error(t, err)
			assert.True(t, bridge.IsPermanent(err), err.Error())
		})
	}
	assert.Zero(t, fake.Requests(), "nothing is sent for an entry that cannot be rendered")
}

// Each attempt carries a fresh timestamp and a signature over it; the body
// and webhook-id stay the same.
func TestDeliverResignsEachAttempt(t *testing.T) {
	secret := standardtest.NewSecret()
	key := mustSecret(t, secret)
	type attempt struct {
		header http.Header
		body   []byte
	}
	var mu sync.Mutex
	var attempts []attempt
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		attempts = append(attempts, attempt{r.Header.Clone(), b})
		n := len(attempts)
		mu.Unlock()
		if n < 3 {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	t.Cleanup(srv.Close)
	clock := &fakeClock{now: t0, step: 7 * time.Second}
	a := outboundAdapter(t, srv.URL, secret, standard.Options{Clock: clock})
	require.NoError(t, a.Deliver(t.Context(), entry("e1", bridge.EffectPostMessage, "hi", nil)))

	require.Len(t, attempts, 3)
	var last int64
	for i, at := range attempts {
		ts, err := strconv.ParseInt(at.header.Get("webhook-timestamp"), 10, 64)
		require.NoError(t, err)
		assert.Greater(t, ts, last, "attempt %d: fresh timestamp", i)
		last = ts
		assert.Equal(t, "e1", at.header.Get("webhook-id"))
		assert.Equal(t, attempts[0].body, at.body, "same body on every attempt")
		id, err := standard.Verify([][]byte{key}, at.header, at.body, time.Unix(ts, 0), time.Second)
		require.NoError(t, err, "attempt %d", i)
		assert.Equal(t, "e1", id)
	}
}

// The adapter reuses keyed HMAC states (a pool per secret): concurrent
// requests signed under either secret, or a third, verify exactly as
// Verify computes afresh, however the states are shared out.
func TestParseWebhookReusedMACs(t *testing.T) {
	a := newInbound(t)
	body := []byte(`{"type":"conversation.closed","data":{"conversation_id":"c1"}}`)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				secret := []string{secretA, secretB, secretC}[(g+i)%3]
				id := "msg_" + strconv.Itoa(g) + "_" + strconv.Itoa(i)
				_, err := a.ParseWebhook(t.Context(), webhook(secret, id, t0, body))
				if secret == secretC {
					assert.ErrorIs(t, err, standard.ErrBadSignature, id)
				} else {
					assert.NoError(t, err, id)
				}
			}
		})
	}
	wg.Wait()
}
