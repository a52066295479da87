package liveperson_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson"
	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson/lptest"
	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// brandConnector is the brand's own Connector API connector: LivePerson's
// Webhooks post it the conversation's messages (signed for its app
// install), and it hands the consumer what is for the consumer — agents'
// messages to everyone — on the brand's channel.
type brandConnector struct {
	t       *testing.T
	account string
	srv     *httptest.Server

	mu      sync.Mutex
	inbox   []string // what the consumer's channel showed
	refused int
}

func newBrandConnector(t *testing.T, account string) *brandConnector {
	c := &brandConnector{t: t, account: account}
	c.srv = httptest.NewServer(http.HandlerFunc(c.webhook))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *brandConnector) webhook(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if liveperson.Verify(r.Header, body, c.account, connAppID, []byte(connAppSecret)) != nil {
		c.mu.Lock()
		c.refused++
		c.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var n struct {
		Body struct {
			Changes []struct {
				OriginatorMetadata struct{ Role string } `json:"originatorMetadata"`
				Event              struct{ Type, Message string }
				MessageAudience    string `json:"messageAudience"`
			} `json:"changes"`
		} `json:"body"`
	}
	if json.Unmarshal(body, &n) != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range n.Body.Changes {
		// Agents-only notes and the consumer's own messages are not shown.
		if ch.Event.Type == "ContentEvent" && ch.MessageAudience != liveperson.AudienceAgentsManagers && ch.OriginatorMetadata.Role != "CONSUMER" {
			c.inbox = append(c.inbox, ch.Event.Message)
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (c *brandConnector) shown() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.inbox...)
}

// deliver is LivePerson's Webhooks posting to the connector's app install.
func (c *brandConnector) deliver(n lptest.Notification) {
	m := hmac.New(sha1.New, []byte(connAppSecret))
	m.Write(n.Body)
	req, _ := http.NewRequest(http.MethodPost, c.srv.URL, bytes.NewReader(n.Body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(liveperson.HeaderAccountID, c.account)
	req.Header.Set(liveperson.HeaderClientID, connAppID)
	req.Header.Set(liveperson.HeaderSignature, "sha1="+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
	}
}

// TestConnectorChannelStepUp is bridge-driven step-up on a channel the brand
// connects through the Connector API: the agent types /verify, the login
// link reaches the consumer through LivePerson and the brand's connector,
// the consumer logs in and types the code on their channel, and the
// verified identity is set on the Connector API consumer (SEND
// SetUserProfile on its behalf), the agents are told, and the transfer to
// the authenticated skill takes the conversation from the assigned agent.
func TestConnectorChannelStepUp(t *testing.T) {
	h := newHarnessWith(t, authedSkill, harnessOpts{
		lp: lptest.Config{ConnectorClientID: connAppID, ConnectorSecret: connAppSecret},
		platform: func(p *config.LivePersonPlatform) {
			p.ConnectorAPI = config.LivePersonConnectorAPI{
				Enabled: true, ClientID: connAppID, ClientSecret: config.Secret{Ref: "${LP_CONNECTOR_APP_SECRET}", Value: connAppSecret},
				ExtConsumerIDSDE: "ctmrinfo.socialId", SDEs: map[string]string{"personal.firstname": "name"},
			}
		},
	})
	const conv, agent = "c4a1e2b3-0000-4000-8000-0000000000e2", "29c3019d-fe0b-5200-afe8-737abfeae4b4"
	ctx := context.Background()
	channel := newBrandConnector(t, h.lp.Config().Account)
	h.lp.OnNotification(channel.deliver)

	// The brand's connector opened the conversation for its consumer (with
	// the ext_consumer_id in ctmrinfo.socialId); an agent took it.
	h.lp.RegisterConsumer(extConsumer, lpConsumer)
	h.lp.OpenConsumerConversation(conv, lpConsumer)
	h.lp.SetProfile(lpConsumer, map[string]any{"authenticatedData": map[string]any{"lp_sdes": []any{
		map[string]any{"type": "ctmrinfo", "info": map[string]any{"socialId": extConsumer}},
	}}})
	h.lp.AssignAgent(conv, agent)
	code, out := h.post(cqmWithAgent(conv, lpConsumer, agent, 1700000000100), nil)
	require.Equal(t, http.StatusOK, code, out)
	code, _ = h.post(msgText(conv, lpConsumer, "CONSUMER", 0, "I need to change my address"), nil)
	require.Equal(t, http.StatusOK, code)

	// The agent asks for verification; the link reaches the consumer.
	code, _ = h.post(msgText(conv, agent, "ASSIGNED_AGENT", 1, "/verify"), nil)
	require.Equal(t, http.StatusOK, code)
	eventually(t, func() bool { return len(channel.shown()) == 1 }, "the login link reached the consumer's channel")
	link := channel.shown()[0]
	require.True(t, strings.HasPrefix(link, "https://bridge.example/login/acme/"), link)
	_, _, sends := h.lp.ConnectorCounts()
	assert.Zero(t, sends, "nothing was SENT as the consumer to carry the link")

	// The consumer logs in through the link.
	u, err := url.Parse(link)
	require.NoError(t, err)
	start, err := h.svc.StartLogin(ctx, "acme", u.Path[strings.LastIndex(u.Path, "/")+1:])
	require.NoError(t, err)
	h.idp.QueueUser(oidctest.User{Subject: "user-42", Name: "Alice Example", Email: "alice@example.test", EmailVerified: true, AMR: []string{"pwd", "otp"}})
	loc, err := h.idp.Login(start.AuthURL)
	require.NoError(t, err)
	q := loc.Query()
	h.codes = append(h.codes, q.Get("code"))
	res, err := h.svc.FinishLogin(ctx, "acme", start.TxnCookie, bridge.Callback{State: q.Get("state"), Code: q.Get("code"), Iss: q.Get("iss")})
	require.NoError(t, err)
	require.NotEmpty(t, res.Code, "confirm-code binding: the page shows a code")
	h.codes = append(h.codes, res.Code)

	// The consumer types it on their channel; the connector passes it on.
	code, _ = h.post(msgText(conv, lpConsumer, "CONSUMER", 2, res.Code), nil)
	require.Equal(t, http.StatusOK, code)
	sess, err := h.status(conv)
	require.NoError(t, err)
	require.Equal(t, bridge.StateSteppedUp, sess.State)

	// The identity is set on the Connector API consumer, as that consumer.
	eventually(t, func() bool { return len(h.lp.ConsumerEvents()) == 1 }, "SetUserProfile sent")
	ev := h.lp.ConsumerEvents()[0]
	assert.Equal(t, "userprofile.SetUserProfile", ev.Type)
	assert.Equal(t, lpConsumer, ev.Consumer)
	assert.JSONEq(t, `[{"type":"ctmrinfo","info":{"customerId":"user-42","socialId":"`+extConsumer+`"}},{"type":"personal","personal":{"firstname":"Alice Example"}}]`, string(ev.SDEs))

	// The agents are told, the consumer's channel is not; the transfer
	// removes the assigned agent.
	eventually(t, func() bool {
		for _, m := range h.lp.Messages() {
			if m.Audience == liveperson.AudienceAgentsManagers && strings.Contains(m.Text, "user-42") {
				return true
			}
		}
		return false
	}, "agent-only note")
	eventually(t, func() bool { return len(h.lp.Transfers()) == 1 }, "transfer")
	assert.Equal(t, lptest.Transfer{Conversation: conv, Skill: authedSkill, Unassigned: agent}, h.lp.Transfers()[0])
	assert.Equal(t, []string{link}, channel.shown(), "only the link reached the consumer")
	channel.mu.Lock()
	assert.Zero(t, channel.refused)
	channel.mu.Unlock()
	assert.Empty(t, h.lp.Violations())
}
