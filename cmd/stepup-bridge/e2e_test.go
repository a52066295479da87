package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/adapters/standard/standardtest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// TestEndToEnd drives the bridge-driven step-up (DESIGN §4 flow A) over real
// HTTP and TLS, through App.serve with its outbox workers: signed Standard
// Webhooks in, a login link by the API and by the agent command, a browser
// with a cookie jar through /login, the oidctest IdP and /callback, the
// confirm code typed into the chat, and the checking fake platform
// receiving every call signed and as documented.
func TestEndToEnd(t *testing.T) {
	for _, sc := range storeCases {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, sc, harnessOptions{workers: true})
			alice := oidctest.User{Subject: "user-42", Name: "Alice Example", Email: "alice@example.test", EmailVerified: true, AMR: []string{"pwd", "otp"}, ACR: "urn:example:loa:2"}
			bob := oidctest.User{Subject: "user-77", Name: "Bob Builder", Email: "bob@example.test", AMR: []string{"pwd"}}

			// Conversation 1: the link comes from the API (a bot, an agent widget).
			conv1, anon1 := "conv-"+bridge.RandomString(6), "anon-"+bridge.RandomString(6)
			assert.Equal(t, float64(1), h.webhook("acme", started(conv1, anon1, "web"))["events"])
			h.webhook("acme", consumerSays(conv1, anon1, "Hello, I need help with my account"))
			assert.Equal(t, "anonymous", h.status("acme", conv1)["state"])

			link1 := h.requestLink("acme", conv1, true)
			post := h.waitCalls("acme", conv1, 1)[0]
			assert.Equal(t, "stepup.message.post", post.Type)
			assert.Equal(t, &standardtest.MessagePost{ConversationID: conv1, ConsumerID: anon1, Text: "Please verify your identity here: " + link1, Audience: "consumer"}, post.Message)
			st := h.status("acme", conv1)
			assert.Equal(t, "link_issued", st["state"])
			assert.Equal(t, float64(1), st["links_issued"])

			h.idp.QueueUser(alice)
			code1 := h.newBrowser().login(link1)
			assert.Regexp(t, `^[0-9]{3} [0-9]{3}$`, code1)
			st = h.status("acme", conv1)
			assert.Equal(t, "login_verified", st["state"])
			assert.NotContains(t, st, "identity", "the identity shows only once the code came back")
			assert.Len(t, h.brands["acme"].platform.Calls(), 1, "nothing is sent before the code comes back")

			// The consumer types the code as shown on the page.
			h.webhook("acme", consumerSays(conv1, anon1, code1))
			calls := h.waitCalls("acme", conv1, 4)[1:]
			checkStepUpCalls(t, h, calls, conv1, anon1, alice)
			st = h.status("acme", conv1)
			assert.Equal(t, "stepped_up", st["state"])
			assert.Equal(t, true, st["stepped_up"])
			id, _ := st["identity"].(map[string]any)
			assert.Equal(t, "user-42", id["sub"])
			assert.Equal(t, h.idp.Issuer(), id["iss"])

			// Conversation 2: an agent types the command in the chat.
			conv2, anon2 := "conv-"+bridge.RandomString(6), "anon-"+bridge.RandomString(6)
			h.webhook("acme", started(conv2, anon2, "web"))
			h.webhook("acme", consumerSays(conv2, anon2, "hi"))
			assert.Equal(t, float64(1), h.webhook("acme", agentSays(conv2, "/verify"))["events"])
			post = h.waitCalls("acme", conv2, 1)[0]
			msg, ok := post.Message.(*standardtest.MessagePost)
			require.True(t, ok, "first call is %s", post.Type)
			link2 := regexp.MustCompile(`https://\S+`).FindString(msg.Text)
			require.True(t, strings.HasPrefix(link2, h.url+"/login/acme/"), "posted %q", msg.Text)
			assert.Equal(t, "consumer", msg.Audience)
			assert.NotEqual(t, link1, link2)

			h.idp.QueueUser(bob)
			require.NoError(t, h.idp.UseAlg("ES256")) // the first login was RS256
			code2 := h.newBrowser().login(link2)
			h.webhook("acme", consumerSays(conv2, anon2, unspaced(code2)))
			checkStepUpCalls(t, h, h.waitCalls("acme", conv2, 4)[1:], conv2, anon2, bob)
			assert.Equal(t, "stepped_up", h.status("acme", conv2)["state"])

			// Nothing else reached either platform.
			assert.Len(t, h.brands["acme"].platform.Calls(), 8)
			assert.Empty(t, h.brands["globex"].platform.Calls())

			// The operators' view: metrics by brand, never by id.
			resp, err := h.api.Get(h.url + "/metrics")
			require.NoError(t, err)
			metrics, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			for _, line := range []string{
				`stepup_stepped_up_total{brand="acme",platform="standard"} 2`,
				`stepup_login_links_issued_total{brand="acme",via="api"} 1`,
				`stepup_login_links_issued_total{brand="acme",via="agent_command"} 1`,
				`stepup_logins_total{brand="acme",outcome="verified"} 2`,
				`stepup_confirm_codes_total{brand="acme",result="matched"} 2`,
				`stepup_outbox_deliveries_total{brand="acme",effect="attach_identity",outcome="delivered",platform="standard"} 2`,
			} {
				assert.Contains(t, string(metrics), line+"\n")
			}
			assert.NotContains(t, string(metrics), conv1, "no ids as labels")
			for _, path := range []string{"/healthz", "/readyz"} {
				resp, err := h.api.Get(h.url + path)
				require.NoError(t, err)
				resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode, path)
			}

			h.requireLogsClean(alice.Email, alice.Name, bob.Email, bob.Name, link1, link2)
		})
	}
}

// checkStepUpCalls checks the three calls a step-up makes, in any order.
func checkStepUpCalls(t *testing.T, h *harness, calls []standardtest.Call, conv, consumer string, u oidctest.User) {
	t.Helper()
	byType := map[string]standardtest.Call{}
	for _, c := range calls {
		byType[c.Type] = c
	}
	require.Len(t, byType, 3, "three different calls")
	checkIdentity := func(id *standardtest.Identity) {
		t.Helper()
		require.NotNil(t, id)
		assert.Equal(t, u.Subject, id.Subject)
		assert.Equal(t, h.idp.Issuer(), id.Issuer)
		assert.Equal(t, "127.0.0.1", id.Provider, "provider defaults to the issuer host")
		assert.Equal(t, u.Name, id.Name)
		assert.Equal(t, u.Email, id.Email)
		assert.Equal(t, u.EmailVerified, id.EmailVerified)
		assert.Equal(t, u.AMR, id.AMR)
		assert.Equal(t, u.ACR, id.ACR)
		assert.NotNil(t, id.AuthTime)
		assert.WithinDuration(t, h.clock.Now(), id.VerifiedAt, time.Minute)
	}

	attach, ok := byType["stepup.identity.attach"].Message.(*standardtest.IdentityAttach)
	require.True(t, ok, "attach identity call")
	assert.Equal(t, conv, attach.ConversationID)
	assert.Equal(t, consumer, attach.ConsumerID)
	checkIdentity(&attach.Identity)

	note, ok := byType["stepup.agents.notify"].Message.(*standardtest.AgentsNotify)
	require.True(t, ok, "notify agents call")
	assert.Equal(t, conv, note.ConversationID)
	assert.Equal(t, "agents", note.Audience)
	assert.Regexp(t, `^Consumer verified: `+regexp.QuoteMeta(u.Name)+` \(`+regexp.QuoteMeta(u.Subject)+`\) via 127\.0\.0\.1 at \d{4}-\d\d-\d\d \d\d:\d\d UTC$`, note.Text)
	checkIdentity(note.Identity)

	msg, ok := byType["stepup.message.post"].Message.(*standardtest.MessagePost)
	require.True(t, ok, "consumer message call")
	assert.Equal(t, &standardtest.MessagePost{ConversationID: conv, ConsumerID: consumer, Text: "Thanks, you are now verified.", Audience: "consumer"}, msg)

	for _, c := range calls {
		// The fake verified each signature with its own HMAC; a bad one
		// would be a violation and no call.
		assert.NotEmpty(t, c.ID)
	}
	assert.Empty(t, h.brands["acme"].platform.Violations())
}
