package playground

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stepup-bridge/stepup-bridge/adapters/standard"
	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// Run polls the bridge's status API for conversations with a login under
// way (the IdP callback changes state without the platform seeing it) until
// ctx ends.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.o.PollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.pollActive()
		}
	}
}

func (s *Server) pollActive() {
	s.mu.Lock()
	var ids []string
	for id, c := range s.convs {
		if c.State == string(bridge.StateLinkIssued) || c.State == string(bridge.StateLoginVerified) {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.poll(context.Background(), id, hintNone)
	}
}

func randomID(prefix string) string {
	b := make([]byte, 9)
	rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) createConversation(w http.ResponseWriter, r *http.Request) {
	c := &Conversation{ID: randomID("conv_"), Consumer: randomID("anon_"), Channel: "web", StartedAt: s.now(), State: "unknown", delivered: map[string]bool{}}
	s.mu.Lock()
	if len(s.convs) >= maxConversations {
		s.forgetOldestLocked()
	}
	s.convs[c.ID] = c
	s.addLocked(c.ID, "platform", "conversation", "info", "Anonymous visitor opened the chat (simulated platform, channel web).")
	s.mu.Unlock()
	s.send(r.Context(), c.ID, standard.TypeConversationStarted, map[string]any{
		"conversation_id": c.ID, "consumer_id": c.Consumer, "channel": c.Channel,
	}, "conversation.started", hintNone)
	s.getConversationByID(w, c.ID, http.StatusCreated)
}

// forgetOldestLocked drops the conversation started first; the caller holds mu.
func (s *Server) forgetOldestLocked() {
	var oldest *Conversation
	for _, c := range s.convs {
		if oldest == nil || c.StartedAt.Before(oldest.StartedAt) {
			oldest = c
		}
	}
	if oldest != nil {
		delete(s.convs, oldest.ID)
	}
}

func (s *Server) getConversationByID(w http.ResponseWriter, id string, status int) {
	s.mu.Lock()
	snap := s.snapshotLocked(s.convs[id])
	s.mu.Unlock()
	writeJSON(w, status, snap)
}

type messageRequest struct {
	From string `json:"from"` // consumer or agent
	Text string `json:"text"`
}

func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	var req messageRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "malformed JSON")
		return
	}
	req.Text = strings.TrimSpace(req.Text)
	if req.From != "consumer" && req.From != "agent" || req.Text == "" || len([]rune(req.Text)) > 2000 {
		writeError(w, http.StatusBadRequest, "from must be consumer or agent, text 1 to 2000 characters")
		return
	}
	s.message(w, r, req)
}

// verify is the agent's "Ask to verify" button: the agent command, typed.
func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	s.message(w, r, messageRequest{From: "agent", Text: s.o.AgentCommand})
}

// message shows a message in the conversation, then sends it to the bridge
// as a signed message.created webhook, then asks the bridge what changed.
func (s *Server) message(w http.ResponseWriter, r *http.Request, req messageRequest) {
	s.mu.Lock()
	c, ok := s.conversation(w, r)
	if !ok {
		s.mu.Unlock()
		return
	}
	m := Message{At: s.now(), From: req.From, Audience: "all", Kind: "text", Text: req.Text}
	command := req.From == "agent" && strings.EqualFold(req.Text, s.o.AgentCommand)
	if command {
		// A command goes to the bridge, not to the consumer.
		m.Audience, m.Kind = "agents", "command"
	}
	s.appendLocked(c, m)
	id, consumer, channel, state, links := c.ID, c.Consumer, c.Channel, c.State, c.LinksIssued
	s.mu.Unlock()

	what := "message.created (" + req.From + " message)"
	switch {
	case command:
		what = "message.created (agent command " + req.Text + ")"
	case req.From == "consumer" && s.isCode(req.Text):
		what = "message.created (consumer message that looks like a confirm code)"
	}
	author := map[string]any{"role": req.From, "id": consumer}
	if req.From == "agent" {
		author["id"] = "agent-1"
	}
	h := hint{links: links}
	switch {
	case command:
		h.kind = hintCommand
	case req.From == "consumer" && state == string(bridge.StateLoginVerified) && s.isCode(req.Text):
		h.kind = hintCode
	}
	s.send(r.Context(), id, standard.TypeMessageCreated, map[string]any{
		"conversation_id": id, "consumer_id": consumer, "channel": channel, "author": author, "text": req.Text,
	}, what, h)
	s.getConversationByID(w, id, http.StatusOK)
}

func (s *Server) appendLocked(c *Conversation, m Message) {
	s.seq++
	m.Seq = s.seq
	c.Messages = append(c.Messages, m)
	s.changedLocked()
}

// send delivers one signed webhook to the bridge, as a platform does:
// retried with the same webhook-id on 5xx or a network error, so the
// bridge's deduplication makes a retry harmless. Then it polls the status.
func (s *Server) send(ctx context.Context, conv, typ string, data map[string]any, what string, h hint) {
	sent := s.now()
	body, _ := json.Marshal(map[string]any{"type": typ, "timestamp": sent.UTC().Format(time.RFC3339Nano), "data": data})
	id := randomID("evt_")
	target := s.o.BridgeURL + "/webhooks/" + url.PathEscape(s.o.Brand) + "/" + url.PathEscape(s.o.Platform)
	var status int
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		status, err = s.post(ctx, target, id, body)
		if err == nil && status < 500 {
			break
		}
		time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
	}
	s.mu.Lock()
	switch {
	case err != nil:
		s.log.Warn("webhook to the bridge failed", "type", typ, "error", err)
		s.addAtLocked(sent, conv, "platform", "webhook", "error", fmt.Sprintf("Platform → bridge: %s could not be delivered (%v).", what, err))
	case status/100 != 2:
		s.addAtLocked(sent, conv, "platform", "webhook", "error", fmt.Sprintf("Platform → bridge: %s refused with HTTP %d.", what, status))
	default:
		s.addAtLocked(sent, conv, "bridge", "webhook received", "ok", fmt.Sprintf("Webhook %s: the bridge checked its Standard Webhooks signature on the raw body and stored the event durably before answering %d.", what, status))
	}
	s.mu.Unlock()
	s.poll(ctx, conv, h)
}

func (s *Server) post(ctx context.Context, target, id string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	standard.SignHeader(req.Header, s.whKey, id, s.now(), body)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// hint is what a webhook was meant to make the bridge do.
type hint struct {
	kind int
	// links is how many links the bridge had issued before the webhook
	// (the background poll may learn of a new one first).
	links int
}

const (
	hintCode    = iota + 1 // a consumer message that looks like the confirm code
	hintCommand            // the agent command that asks for a login link
)

var hintNone = hint{}

// bridgeStatus is the part of the status API the playground reads.
type bridgeStatus struct {
	State       string    `json:"state"`
	LinksIssued int       `json:"links_issued"`
	SteppedUp   bool      `json:"stepped_up"`
	UpdatedAt   time.Time `json:"updated_at"`
	SteppedUpAt time.Time `json:"stepped_up_at"`
}

// poll asks the bridge's status API (as a brand back end would, with its
// API key) and turns state changes into timeline entries. The hint says
// what the last webhook was meant to do, to tell when it did nothing.
func (s *Server) poll(ctx context.Context, conv string, h hint) {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.o.BridgeURL+"/api/v1/brands/"+url.PathEscape(s.o.Brand)+"/conversations/"+url.PathEscape(conv), nil)
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+s.o.APIKey)
	resp, err := s.client.Do(req)
	if err != nil {
		s.log.Warn("bridge status API unreachable", "error", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return
	}
	var st bridgeStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.convs[conv]
	if c == nil {
		return
	}
	if h.kind == hintCommand && st.LinksIssued <= h.links {
		// The bridge acknowledges a refused command (it is an answer, not
		// a failure) and tells nobody; the agent would wait in vain.
		s.addLocked(conv, "bridge", "link refused", "warn", "The bridge issued no link for this "+s.o.AgentCommand+": the conversation is already stepped up or closed, or had its maximum number of login links (step_up.max_links).")
	}
	// When it happened, by the bridge's record; a poll is later than that.
	at := st.UpdatedAt
	if st.State == string(bridge.StateSteppedUp) && !st.SteppedUpAt.IsZero() {
		at = st.SteppedUpAt
	}
	switch {
	case at.IsZero(), st.State == string(bridge.StateExpired):
		at = s.now() // expiry is not a write: it is noticed now
	case st.State == string(bridge.StateLoginVerified):
		// The bridge stamps the login with the callback's start, before
		// its token call; the IdP's entries for that call come first.
		at = s.now()
	}
	prev, prevLinks := c.State, c.LinksIssued
	c.State, c.LinksIssued = st.State, st.LinksIssued
	if st.State != prev || st.LinksIssued != prevLinks {
		s.changedLocked()
	}
	if st.LinksIssued > prevLinks {
		text := "The bridge minted a single-use login link bound to this conversation and wrote the message carrying it to its outbox, in the same atomic store call."
		if prevLinks > 0 {
			text += " Only the newest link works: the earlier one is void."
		}
		s.addAtLocked(at, conv, "bridge", "link issued", "ok", text)
	}
	switch {
	case st.State == prev:
		if h.kind == hintCode && st.State == string(bridge.StateLoginVerified) {
			s.addAtLocked(at, conv, "bridge", "code refused", "warn", "That confirm code does not match the login waiting for this conversation: one attempt used.")
		}
	case st.State == string(bridge.StateLoginVerified):
		s.addAtLocked(at, conv, "bridge", "login verified", "ok", "Login verified: the bridge redeemed the code with its PKCE verifier and checked the ID token (RS256 signature against the IdP's JWKS, issuer, audience, expiry, nonce). It now waits for the confirm code to come back in this same conversation.")
	case st.State == string(bridge.StateSteppedUp):
		s.addAtLocked(at, conv, "bridge", "code matched", "ok", "The confirm code arrived in this conversation: stepped up, atomically with the outbox calls that tell the platform.")
	case st.State == string(bridge.StateExpired) && prev == string(bridge.StateLoginVerified):
		s.addAtLocked(at, conv, "bridge", "code expired", "warn", "The confirm code expired before it came back: the login will be discarded. The agent can send a new link.")
	case st.State == string(bridge.StateExpired):
		s.addAtLocked(at, conv, "bridge", "link expired", "warn", "The login link expired unused. The agent can send a new one.")
	case st.State == string(bridge.StateAnonymous) && prev == string(bridge.StateLoginVerified):
		s.addAtLocked(at, conv, "bridge", "code refused", "error", "Too many wrong confirm codes: the bridge discarded the login. The conversation stays anonymous; the agent can send a new link.")
	}
}

// Outbound schema (bridge → platform), the platform's own copy of the
// documented contract: decoded strictly, so a renamed or extra key is a
// refused call, not a silently missing field.
type (
	callEnvelope struct {
		Type      string          `json:"type"`
		Timestamp time.Time       `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	messagePost struct {
		ConversationID string `json:"conversation_id"`
		ConsumerID     string `json:"consumer_id"`
		Text           string `json:"text"`
		Audience       string `json:"audience"`
	}
	identityAttach struct {
		ConversationID string    `json:"conversation_id"`
		ConsumerID     string    `json:"consumer_id"`
		Identity       *Identity `json:"identity"`
	}
	agentsNotify struct {
		ConversationID string    `json:"conversation_id"`
		ConsumerID     string    `json:"consumer_id"`
		Text           string    `json:"text"`
		Audience       string    `json:"audience"`
		Identity       *Identity `json:"identity"`
	}
	skillRoute struct {
		ConversationID string `json:"conversation_id"`
		ConsumerID     string `json:"consumer_id"`
		Skill          string `json:"skill"`
	}
)

func strict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// platformCall receives one outbox call from the bridge: signature first
// (on the raw body), then the schema, then idempotency on webhook-id.
func (s *Server) platformCall(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		s.refuseCall(w, http.StatusUnsupportedMediaType, "", "Content-Type is not application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		s.refuseCall(w, http.StatusRequestEntityTooLarge, "", "body too large")
		return
	}
	id, err := standard.Verify([][]byte{s.epKey}, r.Header, body, s.now(), standard.DefaultTolerance)
	if err != nil {
		s.refuseCall(w, http.StatusUnauthorized, "", "signature check failed: "+err.Error())
		return
	}
	var env callEnvelope
	if err := strict(body, &env); err != nil || env.Type == "" || env.Timestamp.IsZero() || len(env.Data) == 0 {
		s.refuseCall(w, http.StatusBadRequest, "", "envelope does not match {type, timestamp, data}")
		return
	}
	var conv string
	var apply func(c *Conversation) string
	switch env.Type {
	case standard.TypeMessagePost:
		var d messagePost
		err = strict(env.Data, &d)
		if err == nil && (d.Text == "" || d.Audience != standard.AudienceConsumer) {
			err = errors.New("text and audience consumer are required")
		}
		conv = d.ConversationID
		apply = func(c *Conversation) string {
			s.appendLocked(c, Message{At: s.now(), From: "bridge", Audience: "all", Kind: "text", Text: d.Text})
			return "stepup.message.post: a message to the consumer, shown in the chat."
		}
	case standard.TypeIdentityAttach:
		var d identityAttach
		err = strict(env.Data, &d)
		if err == nil {
			err = checkIdentity(d.Identity, true)
		}
		conv = d.ConversationID
		apply = func(c *Conversation) string {
			c.Identity = d.Identity
			return "stepup.identity.attach: the verified identity is now on the conversation."
		}
	case standard.TypeAgentsNotify:
		var d agentsNotify
		err = strict(env.Data, &d)
		if err == nil && (d.Text == "" || d.Audience != standard.AudienceAgents) {
			err = errors.New("text and audience agents are required")
		}
		if err == nil {
			err = checkIdentity(d.Identity, false)
		}
		conv = d.ConversationID
		apply = func(c *Conversation) string {
			c.SteppedUp, c.SteppedUpAt, c.Notice = true, s.now(), d.Text
			if c.Identity == nil && d.Identity != nil {
				c.Identity = d.Identity
			}
			s.appendLocked(c, Message{At: s.now(), From: "bridge", Audience: "agents", Kind: "note", Text: d.Text})
			return "stepup.agents.notify: agent-only note and the stepped-up notification."
		}
	case standard.TypeSkillRoute:
		var d skillRoute
		err = strict(env.Data, &d)
		if err == nil && d.Skill == "" {
			err = errors.New("skill is required")
		}
		conv = d.ConversationID
		apply = func(c *Conversation) string {
			c.Skill = d.Skill
			return "stepup.skill.route: conversation routed to the " + d.Skill + " queue."
		}
	default:
		s.refuseCall(w, http.StatusBadRequest, "", "unknown event type")
		return
	}
	if err != nil {
		s.refuseCall(w, http.StatusBadRequest, conv, env.Type+" does not match the documented schema: "+err.Error())
		return
	}

	s.mu.Lock()
	c := s.convs[conv]
	switch {
	case c == nil:
		s.mu.Unlock()
		s.refuseCall(w, http.StatusNotFound, "", env.Type+" for an unknown conversation")
		return
	case c.delivered[id]:
		// The outbox retried a call that had arrived: same webhook-id, same effect.
		s.addLocked(conv, "platform", "duplicate ignored", "info", "Bridge → platform: a repeated delivery of "+env.Type+" (same webhook-id, the idempotency key) was acknowledged and not applied twice.")
	default:
		text := apply(c)
		c.delivered[id] = true
		s.addLocked(conv, "bridge", "platform call delivered", "ok", "Bridge → platform (outbox): "+text+" Signature verified.")
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func checkIdentity(id *Identity, required bool) error {
	switch {
	case id == nil && required:
		return errors.New("identity is required")
	case id == nil:
		return nil
	case id.Issuer == "" || id.Subject == "" || id.VerifiedAt.IsZero():
		return errors.New("identity needs issuer, subject and verified_at")
	case id.AMR == nil || id.Claims == nil:
		return errors.New("identity amr and claims must be present ([] and {} when empty)")
	}
	return nil
}

// refuseCall answers a call the bridge should not have made; it is
// reported on the timeline, and the bridge's outbox retries or
// dead-letters it by status.
func (s *Server) refuseCall(w http.ResponseWriter, status int, conv, reason string) {
	s.log.Warn("refused a call from the bridge", "status", status, "reason", reason)
	s.add(conv, "platform", "platform call refused", "error", fmt.Sprintf("Bridge → platform call refused with HTTP %d: %s.", status, reason))
	writeError(w, status, reason)
}
