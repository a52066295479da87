package main

import (
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/stepup-bridge/stepup-bridge/adapters/liveperson"
	"github.com/stepup-bridge/stepup-bridge/adapters/standard"
)

// Event kinds the generator sends (report keys).
const (
	kindStarted  = "started"
	kindConsumer = "consumer_message"
	kindAgent    = "agent_message"
	kindVerify   = "agent_verify"
	kindClosed   = "closed"
	kindCode     = "confirm_code"
)

// wireEvent is a Standard Webhooks body as adapters/standard/README.md
// documents it.
type wireEvent struct {
	Type      string   `json:"type"`
	Timestamp string   `json:"timestamp"`
	Data      wireData `json:"data"`
}

type wireData struct {
	ConversationID string      `json:"conversation_id"`
	ConsumerID     string      `json:"consumer_id,omitempty"`
	Channel        string      `json:"channel,omitempty"`
	Author         *wireAuthor `json:"author,omitempty"`
	Text           string      `json:"text,omitempty"`
}

type wireAuthor struct {
	Role string `json:"role"`
	ID   string `json:"id"`
}

// request is one webhook, ready to sign and send.
type request struct {
	kind     string
	platform string // standard | liveperson
	path     string // /webhooks/{brand}/{platform}
	id       string // webhook-id (standard)
	body     []byte
}

// signer holds what signs each platform's webhooks.
type signer struct {
	standard []byte // the brand's whsec_ key
	// LivePerson: the app install's account, client id and secret.
	lpAccount, lpClient string
	lpSecret            []byte
}

// header returns the signed headers for r at now: Standard Webhooks, or
// LivePerson's x-liveperson-* (HMAC-SHA1 of the body, base64, as
// LivePerson signs by default).
func (sg *signer) header(r *request, now time.Time) http.Header {
	h := make(http.Header, 4)
	h.Set("Content-Type", "application/json")
	if r.platform == liveperson.Type {
		h.Set(liveperson.HeaderAccountID, sg.lpAccount)
		h.Set(liveperson.HeaderClientID, sg.lpClient)
		h.Set(liveperson.HeaderSignature, liveperson.Sign(sg.lpSecret, r.body, "sha1", false))
		return h
	}
	standard.SignHeader(h, sg.standard, r.id, now, r.body)
	return h
}

// newSecret returns a fresh whsec_ secret (32 random bytes).
func newSecret() string {
	b := make([]byte, 32)
	_, _ = crand.Read(b)
	return standard.SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

func mustKey(secret string) []byte {
	k, err := mustKeyErr(secret)
	if err != nil {
		panic(err)
	}
	return k
}

func mustKeyErr(secret string) ([]byte, error) {
	k, err := standard.ParseSecret(secret)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	return k, nil
}

// event builds one webhook body.
func event(typ, conv, consumer, channel, role, author, text string, at time.Time) []byte {
	ev := wireEvent{Type: typ, Timestamp: at.UTC().Format(time.RFC3339Nano), Data: wireData{ConversationID: conv, ConsumerID: consumer, Channel: channel, Text: text}}
	if role != "" {
		ev.Data.Author = &wireAuthor{Role: role, ID: author}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return b
}

// Texts consumers and agents type. No consumer text is a confirm code
// (digits only), so ordinary messages take the Observe path as they do in
// real traffic; confirm codes are sent by the step-up flows.
var consumerTexts = []string{
	"Hi, I have a question about my last invoice",
	"Hello? Is anyone there?",
	"I was charged twice for the same order, can you check please",
	"My parcel was supposed to arrive yesterday but the tracking page has not changed since Monday.",
	"ok",
	"thanks!",
	"Can I change the delivery address for order A-7731?",
	"I would like to cancel my subscription before the next billing date, how do I do that without losing the discount I got last year?",
	"yes that's right",
	"The app keeps logging me out when I open the settings page",
	"Could you tell me what the opening hours of the store in the city centre are on Sundays?",
	"no, the other one",
}

var agentTexts = []string{
	"Hello, thanks for reaching out! How can I help you today?",
	"Let me check that for you, one moment please.",
	"I can see the order here.",
	"Is there anything else I can help you with?",
	"To look into your account I need to verify your identity first.",
}

var channels = []string{"web", "web", "web", "ios", "android", "whatsapp"}

// generator produces a realistic, endless stream of webhooks over many
// conversations: each starts, gets consumer and agent messages (now and
// then an agent's /verify, which issues and posts a login link) and closes
// after perConv events, when a fresh conversation takes its place. Safe
// for concurrent use.
type generator struct {
	mu          sync.Mutex
	rng         *rand.Rand
	brand       string
	platform    string // standard | liveperson
	prefix      string // conversation and event id prefix, unique per phase
	perConv     int
	verifyEvery int // one agent /verify in verifyEvery events (0 = never)
	active      []conv
	next        int
	seq         uint64
	// existing > 0: conversations pop-0..pop-(existing-1) exist already
	// (populate); pick among them uniformly and send messages only.
	existing int
}

type conv struct {
	n    int
	sent int
}

func newGenerator(brand, platform, prefix string, active, perConv, verifyEvery int, seed uint64) *generator {
	if platform == liveperson.Type {
		verifyEvery = 0 // LivePerson steps up natively: no agent command
	}
	g := &generator{rng: rand.New(rand.NewPCG(seed, 0x5eed)), brand: brand, platform: platform, prefix: prefix, perConv: max(perConv, 3), verifyEvery: verifyEvery}
	g.active = make([]conv, max(active, 1))
	for i := range g.active {
		g.active[i] = conv{n: i}
	}
	g.next = len(g.active)
	return g
}

func (g *generator) convID(n int) string {
	if g.existing > 0 {
		return "pop-" + strconv.Itoa(n)
	}
	return g.prefix + "-c" + strconv.Itoa(n)
}

func consumerOf(convID string) string { return "anon-" + convID }

// nextRequest returns the next webhook.
func (g *generator) nextRequest(now time.Time) request {
	g.mu.Lock()
	g.seq++
	id := g.prefix + "-e" + strconv.FormatUint(g.seq, 10)
	var n, seq int
	var kind string
	if g.existing > 0 {
		n = g.rng.IntN(g.existing)
		kind = kindConsumer
		if g.rng.IntN(10) == 0 {
			kind = kindAgent
		}
	} else {
		i := g.rng.IntN(len(g.active))
		c := &g.active[i]
		n, seq = c.n, c.sent
		switch {
		case c.sent == 0:
			kind = kindStarted
		case c.sent >= g.perConv:
			kind = kindClosed
		case g.verifyEvery > 0 && g.rng.IntN(g.verifyEvery) == 0:
			kind = kindVerify
		case g.rng.IntN(10) < 2:
			kind = kindAgent
		default:
			kind = kindConsumer
		}
		c.sent++
		if kind == kindClosed {
			g.active[i] = conv{n: g.next}
			g.next++
		}
	}
	text := consumerTexts[g.rng.IntN(len(consumerTexts))]
	if kind == kindAgent {
		text = agentTexts[g.rng.IntN(len(agentTexts))]
	}
	ch := channels[n%len(channels)]
	g.mu.Unlock()

	cid := g.convID(n)
	if g.platform == liveperson.Type {
		return request{kind: kind, platform: g.platform, path: "/webhooks/" + g.brand + "/" + g.platform, body: lpEvent(kind, cid, text, seq, now)}
	}
	cons := consumerOf(cid)
	var body []byte
	switch kind {
	case kindStarted:
		body = event(standard.TypeConversationStarted, cid, cons, ch, "", "", "", now)
	case kindClosed:
		body = event(standard.TypeConversationClosed, cid, "", "", "", "", "", now)
	case kindVerify:
		body = event(standard.TypeMessageCreated, cid, "", ch, standard.RoleAgent, "agent-7", "/verify", now)
	case kindAgent:
		body = event(standard.TypeMessageCreated, cid, "", ch, standard.RoleAgent, "agent-7", text, now)
	default:
		body = event(standard.TypeMessageCreated, cid, cons, ch, standard.RoleConsumer, cons, text, now)
	}
	return request{kind: kind, platform: standard.Type, path: "/webhooks/" + g.brand + "/standard", id: id, body: body}
}

// LivePerson notification bodies (adapters/liveperson/testdata shapes).
type lpNotification struct {
	Kind string `json:"kind"`
	Body struct {
		Changes []any `json:"changes"`
	} `json:"body"`
	Type string `json:"type"`
}

type lpOriginator struct {
	ID   string `json:"id"`
	Role string `json:"role"`
}

type lpContent struct {
	Sequence           int          `json:"sequence"`
	OriginatorID       string       `json:"originatorId"`
	OriginatorMetadata lpOriginator `json:"originatorMetadata"`
	ServerTimestamp    int64        `json:"serverTimestamp"`
	Event              struct {
		Type        string `json:"type"`
		Message     string `json:"message"`
		ContentType string `json:"contentType"`
	} `json:"event"`
	ConversationID string `json:"conversationId"`
	DialogID       string `json:"dialogId"`
}

type lpConvChange struct {
	Type   string `json:"type"`
	Result struct {
		ConvID              string `json:"convId"`
		ConversationDetails struct {
			Participants         []lpOriginator `json:"participants"`
			BrandID              string         `json:"brandId"`
			State                string         `json:"state"`
			StartTs              int64          `json:"startTs"`
			MetaDataLastUpdateTs int64          `json:"metaDataLastUpdateTs"`
			Dialogs              []lpDialog     `json:"dialogs"`
		} `json:"conversationDetails"`
	} `json:"result"`
}

type lpDialog struct {
	DialogID    string `json:"dialogId"`
	DialogType  string `json:"dialogType"`
	ChannelType string `json:"channelType"`
}

// lpEvent is a LivePerson webhook: a conversation change (opened,
// closed) or a messaging content event (consumer or agent text); seq is
// the event's number in its conversation (the content sequence, and it
// keeps conversation-change timestamps distinct).
func lpEvent(kind, cid, text string, seq int, now time.Time) []byte {
	var n lpNotification
	n.Kind = "notification"
	consumer := "c0ffee" + fmt.Sprintf("%x", []byte(cid))
	ms := now.UnixMilli()
	switch kind {
	case kindStarted, kindClosed:
		var c lpConvChange
		c.Type = "UPSERT"
		c.Result.ConvID = cid
		d := &c.Result.ConversationDetails
		d.Participants = []lpOriginator{{ID: consumer, Role: "CONSUMER"}}
		d.BrandID = lpAccountID
		d.State = "OPEN"
		if kind == kindClosed {
			d.State = "CLOSE"
		}
		d.StartTs = ms
		d.MetaDataLastUpdateTs = ms*1000 + int64(seq) // distinct per change
		d.Dialogs = []lpDialog{{DialogID: cid, DialogType: "MAIN", ChannelType: "MESSAGING"}}
		n.Type = liveperson.TypeConversation
		n.Body.Changes = []any{c}
	default:
		var c lpContent
		c.Sequence = seq
		c.OriginatorID, c.OriginatorMetadata = consumer, lpOriginator{ID: consumer, Role: "CONSUMER"}
		if kind == kindAgent || kind == kindVerify {
			c.OriginatorID, c.OriginatorMetadata = "agent-7", lpOriginator{ID: "agent-7", Role: "ASSIGNED_AGENT"}
		}
		c.ServerTimestamp = ms
		c.Event.Type, c.Event.Message, c.Event.ContentType = "ContentEvent", text, "text/plain"
		c.ConversationID, c.DialogID = cid, cid
		n.Type = liveperson.TypeMessaging
		n.Body.Changes = []any{c}
	}
	b, err := json.Marshal(n)
	if err != nil {
		panic(err)
	}
	return b
}

// lpAccountID is the LivePerson account of the generated brand.
const lpAccountID = "12345678"

// single builds one webhook outside the stream (step-up flows).
func single(brand, id, kind, cid, text string, now time.Time) request {
	cons := consumerOf(cid)
	var body []byte
	switch kind {
	case kindStarted:
		body = event(standard.TypeConversationStarted, cid, cons, "web", "", "", "", now)
	case kindVerify:
		body = event(standard.TypeMessageCreated, cid, "", "web", standard.RoleAgent, "agent-7", "/verify", now)
	default: // consumer message, confirm code
		body = event(standard.TypeMessageCreated, cid, cons, "web", standard.RoleConsumer, cons, text, now)
	}
	return request{kind: kind, platform: standard.Type, path: "/webhooks/" + brand + "/standard", id: id, body: body}
}

func runID() string {
	b := make([]byte, 4)
	_, _ = crand.Read(b)
	return fmt.Sprintf("%x", b)
}
