package redisstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore/redistest"
)

// eachTarget runs fn on standalone Redis and, when configured, on the
// Cluster (skipped with the reason otherwise).
func eachTarget(t *testing.T, fn func(t *testing.T, c redis.UniversalClient)) {
	for _, target := range redistest.Targets() {
		t.Run(target.Name, func(t *testing.T) {
			if target.Skip != "" {
				t.Skip(target.Skip)
			}
			fn(t, redistest.Client(t, target.Addrs...))
		})
	}
}

const brandID = "acme"

// fakePlatform parses a simple JSON event and records every delivery. It
// checks what it is given: step-up effects must carry the identity.
type fakePlatform struct {
	mu         sync.Mutex
	deliveries map[string]int // entry id → times delivered
	effects    []bridge.Effect
	problems   []string
}

func newFakePlatform() *fakePlatform { return &fakePlatform{deliveries: map[string]int{}} }

type fakeEvent struct {
	ID, Kind, Conversation, Consumer, Channel, Text string
}

func (p *fakePlatform) ParseWebhook(_ context.Context, req bridge.WebhookRequest) ([]bridge.Event, error) {
	var ev fakeEvent
	if err := json.Unmarshal(req.Body, &ev); err != nil {
		return nil, fmt.Errorf("%w: %v", bridge.ErrMalformed, err)
	}
	if ev.ID == "" || ev.Conversation == "" {
		return nil, fmt.Errorf("%w: id and conversation are required", bridge.ErrMalformed)
	}
	return []bridge.Event{{ID: ev.ID, Kind: bridge.EventKind(ev.Kind), Conversation: ev.Conversation, Consumer: ev.Consumer, Channel: ev.Channel, Text: ev.Text, At: req.Received}}, nil
}

func (p *fakePlatform) Deliver(_ context.Context, e bridge.OutboxEntry) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case e.ID == "" || e.Key.Brand != brandID || e.Key.Conversation == "":
		p.problems = append(p.problems, fmt.Sprintf("entry without id or key: %+v", e))
	case (e.Effect == bridge.EffectAttachIdentity || e.Effect == bridge.EffectNotifyAgents) && e.Identity == nil:
		p.problems = append(p.problems, fmt.Sprintf("%s without identity", e.Effect))
	case e.Effect == bridge.EffectNotifyAgents && e.Text == "":
		p.problems = append(p.problems, "agent note without text")
	}
	p.deliveries[e.ID]++
	p.effects = append(p.effects, e.Effect)
	return nil
}

func (p *fakePlatform) snapshot() (map[string]int, []bridge.Effect, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := make(map[string]int, len(p.deliveries))
	for k, v := range p.deliveries {
		d[k] = v
	}
	return d, append([]bridge.Effect(nil), p.effects...), append([]string(nil), p.problems...)
}

// fakeIdP is a tiny IdentityProvider: the authorization URL carries state,
// nonce and challenge; Redeem checks the PKCE verifier against the
// challenge of that nonce and returns a fixed identity. (The real OIDC
// provider is tested in adapters/oidc.)
type fakeIdP struct {
	mu         sync.Mutex
	challenges map[string]string // nonce → code challenge
}

func newFakeIdP() *fakeIdP { return &fakeIdP{challenges: map[string]string{}} }

func (f *fakeIdP) AuthURL(state, nonce, challenge string) string {
	f.mu.Lock()
	f.challenges[nonce] = challenge
	f.mu.Unlock()
	return "https://idp.test/authorize?" + url.Values{"state": {state}, "nonce": {nonce}, "code_challenge": {challenge}}.Encode()
}

func (f *fakeIdP) Redeem(_ context.Context, code, verifier, nonce string) (bridge.Identity, error) {
	f.mu.Lock()
	ch, ok := f.challenges[nonce]
	delete(f.challenges, nonce)
	f.mu.Unlock()
	if !ok || code != "code-for-"+nonce || bridge.PKCEChallenge(verifier) != ch {
		return bridge.Identity{}, fmt.Errorf("%w: bad code, nonce or verifier", bridge.ErrLoginRejected)
	}
	return testIdentity(), nil
}

func (f *fakeIdP) Ready(context.Context) error { return nil }
func (f *fakeIdP) Issuer() string              { return "https://idp.test" }

// testIdentity is a realistic verified identity (used for memory sizes too).
func testIdentity() bridge.Identity {
	return bridge.Identity{
		Provider: "Acme IdP", Issuer: "https://idp.test", Subject: "00u1a2b3c4d5e6f7g8h9",
		Name: "Jane Doe", Email: "jane.doe@example.com", EmailVerified: true,
		AMR: []string{"pwd", "mfa"}, ACR: "urn:acme:loa:2",
		AuthTime: time.Now().Add(-time.Minute).Truncate(time.Second), VerifiedAt: time.Now().Truncate(time.Second),
		Claims: map[string]string{"customer_id": "C-1002003"},
	}
}

// counter is a bridge.Recorder that counts step-ups and code results.
type counter struct {
	mu        sync.Mutex
	steppedUp int
	codes     map[bridge.CodeResult]int
}

func (c *counter) Event(string, string, bridge.EventKind, string) {}
func (c *counter) LinkIssued(string, string)                      {}
func (c *counter) Login(string, string)                           {}
func (c *counter) Delivery(string, string, bridge.Effect, string) {}
func (c *counter) Code(_ string, r bridge.CodeResult) {
	c.mu.Lock()
	if c.codes == nil {
		c.codes = map[bridge.CodeResult]int{}
	}
	c.codes[r]++
	c.mu.Unlock()
}
func (c *counter) SteppedUp(string, string) { c.mu.Lock(); c.steppedUp++; c.mu.Unlock() }

// replica is one bridge.Service on a shared store.
type replica struct {
	svc *bridge.Service
	rec *counter
}

func testPolicy() bridge.Policy {
	return bridge.Policy{
		LinkTTL: 10 * time.Minute, TxnTTL: 10 * time.Minute, Binding: bridge.BindingConfirmCode,
		CodeTTL: 5 * time.Minute, CodeLength: 6, CodeAttempts: 3, MaxLinks: 5,
		LinkMessage:  template.Must(template.New("link").Parse("Please log in: {{.URL}}")),
		NotifyAgents: true, NotifyMessage: template.Must(template.New("note").Parse("Verified: {{.Name}} ({{.AMRText}})")),
		ConsumerMessage: "Thanks, you are verified.", Skill: "authenticated",
	}
}

func newReplica(t *testing.T, store bridge.Store, p *fakePlatform, idp *fakeIdP) *replica {
	t.Helper()
	rec := &counter{}
	svc, err := bridge.NewService(bridge.Options{
		Store: store, PublicURL: "https://bridge.test", Recorder: rec,
		Brands: []*bridge.Brand{{ID: brandID, Platforms: map[string]bridge.Platform{"fake": p}, Identity: idp, Policy: testPolicy()}},
	})
	require.NoError(t, err)
	return &replica{svc: svc, rec: rec}
}

func (r *replica) webhook(ctx context.Context, ev fakeEvent) (bridge.WebhookResult, error) {
	body, _ := json.Marshal(ev)
	return r.svc.HandleWebhook(ctx, brandID, "fake", bridge.WebhookRequest{Body: body, Received: time.Now()})
}

// login runs the browser side: open the link on one replica, come back
// from the IdP on another. It returns the confirm code shown on the page.
func login(t *testing.T, ctx context.Context, link bridge.Link, start, finish *replica, idp *fakeIdP) string {
	t.Helper()
	u, err := url.Parse(link.URL)
	require.NoError(t, err)
	ls, err := start.svc.StartLogin(ctx, brandID, path.Base(u.Path))
	require.NoError(t, err)
	au, err := url.Parse(ls.AuthURL)
	require.NoError(t, err)
	q := au.Query()
	res, err := finish.svc.FinishLogin(ctx, brandID, ls.TxnCookie, bridge.Callback{State: q.Get("state"), Code: "code-for-" + q.Get("nonce"), Iss: idp.Issuer()})
	require.NoError(t, err)
	require.Len(t, res.Code, 6)
	return res.Code
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
