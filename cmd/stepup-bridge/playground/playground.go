// Package playground is the web side of `stepup-bridge demo`: a simulated
// messaging platform that speaks the standard adapter's protocol to a real
// bridge, and one page that shows both sides of the conversation — the
// consumer's chat window and the agent's console — plus a timeline of what
// the bridge did.
//
// The simulated platform is honest about the protocol: every webhook it
// sends is signed (Standard Webhooks), every call it receives from the
// bridge's outbox is verified against the endpoint secret and checked
// against the documented schema (a bad one is refused, never shown), and it
// learns the bridge's step-up state only where a brand would: through the
// brand's status API with its API key.
package playground

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stepup-bridge/stepup-bridge/adapters/standard"
	"github.com/stepup-bridge/stepup-bridge/bridge"
)

//go:embed web
var webFS embed.FS

// EndpointPath is where the simulated platform receives the bridge's calls
// (the standard platform's endpoint in the bridge's configuration).
const EndpointPath = "/platform/standard"

// Clock is the demo's shared clock: the system clock plus an offset that
// only moves forward, so a visitor can watch a login link expire without
// waiting ten minutes. The bridge, the platform and the IdP all read it, so
// signatures, replay windows and token lifetimes stay consistent.
type Clock struct{ offset atomic.Int64 }

// Now implements bridge.Clock.
func (c *Clock) Now() time.Time { return time.Now().Add(c.Offset()) }

// Offset is how far the clock was moved ahead.
func (c *Clock) Offset() time.Duration { return time.Duration(c.offset.Load()) }

// Advance moves the clock forward by d (> 0).
func (c *Clock) Advance(d time.Duration) {
	if d > 0 {
		c.offset.Add(int64(d))
	}
}

// Options configure the playground.
type Options struct {
	// BridgeURL is the bridge's base URL (webhooks and the status API).
	BridgeURL string
	Brand     string
	// Platform is the {platform} of /webhooks/{brand}/{platform}.
	Platform string
	// WebhookSecret signs the webhooks the platform sends (whsec_…);
	// EndpointSecret verifies the calls the bridge makes (whsec_…).
	WebhookSecret  string
	EndpointSecret string
	// APIKey is the brand's key for the bridge's status API.
	APIKey string
	// AgentCommand is what an agent types to send a login link (/verify).
	AgentCommand string
	// CodeLength of the confirm code (default 6), to recognise a code typed
	// by the consumer for the timeline.
	CodeLength int
	// IdPName is shown on the page.
	IdPName string
	// Clock is shared with the bridge and the IdP; nil means the system
	// clock and no "skip ahead" control.
	Clock *Clock
	// Client calls the bridge (default: 10s timeout).
	Client *http.Client
	// PollEvery is how often conversations with a login under way are
	// checked at the status API (default 300ms).
	PollEvery time.Duration
	Logger    *slog.Logger
}

// Message is one line of a conversation.
type Message struct {
	Seq  int       `json:"seq"`
	At   time.Time `json:"at"`
	From string    `json:"from"` // consumer, agent, bridge
	// Audience is all, or agents (agent commands and agent-only notes).
	Audience string `json:"audience"`
	Kind     string `json:"kind"` // text, command, note
	Text     string `json:"text"`
}

// Identity is the verified identity the bridge attached (its
// stepup.identity.attach payload).
type Identity struct {
	Provider      string            `json:"provider"`
	Issuer        string            `json:"issuer"`
	Subject       string            `json:"subject"`
	Name          string            `json:"name"`
	Email         string            `json:"email"`
	EmailVerified bool              `json:"email_verified"`
	AMR           []string          `json:"amr"`
	ACR           string            `json:"acr"`
	AuthTime      *time.Time        `json:"auth_time"`
	VerifiedAt    time.Time         `json:"verified_at"`
	Claims        map[string]string `json:"claims"`
}

// Conversation is the platform's view of one conversation.
type Conversation struct {
	ID        string    `json:"id"`
	Consumer  string    `json:"consumer"`
	Channel   string    `json:"channel"`
	StartedAt time.Time `json:"started_at"`
	Messages  []Message `json:"messages"`
	// State is the bridge's step-up state, as its status API reports it.
	State       string    `json:"state"`
	LinksIssued int       `json:"links_issued"`
	Identity    *Identity `json:"identity,omitempty"`
	SteppedUp   bool      `json:"stepped_up"`
	SteppedUpAt time.Time `json:"stepped_up_at,omitzero"`
	// Notice is the agent-only step-up notification text.
	Notice string `json:"notice,omitempty"`
	Skill  string `json:"skill,omitempty"`

	// delivered holds the webhook-ids of the bridge's calls already applied.
	delivered map[string]bool
}

// Entry is one timeline line.
type Entry struct {
	Seq   int       `json:"seq"`
	At    time.Time `json:"at"`
	Conv  string    `json:"conv,omitempty"` // "" for IdP events (the IdP does not know the conversation)
	Actor string    `json:"actor"`          // platform, bridge, idp, demo
	Step  string    `json:"step"`           // webhook received, link issued, login verified, code matched, platform call delivered, …
	Text  string    `json:"text"`
	Level string    `json:"level"` // ok, info, warn, error
}

// Snapshot is everything the page shows for one conversation.
type Snapshot struct {
	// Version grows with every change: a page ignores an older snapshot
	// arriving after a newer one.
	Version      uint64       `json:"version"`
	Conversation Conversation `json:"conversation"`
	Timeline     []Entry      `json:"timeline"`
	ClockOffset  int          `json:"clock_offset_minutes"`
	TimeControls bool         `json:"time_controls"`
	IdPName      string       `json:"idp_name"`
	AgentCommand string       `json:"agent_command"`
}

// Bounds on what the playground keeps: it runs for as long as someone
// plays, and every page load starts a conversation.
const (
	maxTimeline      = 1000
	maxConversations = 200
)

// Server is the running playground.
type Server struct {
	o      Options
	whKey  []byte
	epKey  []byte
	log    *slog.Logger
	client *http.Client
	now    func() time.Time

	pollMu sync.Mutex // one status poll at a time keeps the timeline in order

	mu       sync.Mutex
	convs    map[string]*Conversation
	timeline []Entry
	seq      int
	version  uint64
	changed  chan struct{} // closed and replaced on every change
}

// New checks the options and builds the playground; Run polls the bridge.
func New(o Options) (*Server, error) {
	whKey, err := standard.ParseSecret(o.WebhookSecret)
	if err != nil {
		return nil, fmt.Errorf("playground: webhook secret: %w", err)
	}
	epKey, err := standard.ParseSecret(o.EndpointSecret)
	if err != nil {
		return nil, fmt.Errorf("playground: endpoint secret: %w", err)
	}
	if o.BridgeURL == "" || o.Brand == "" || o.Platform == "" || o.APIKey == "" {
		return nil, errors.New("playground: bridge URL, brand, platform and API key are required")
	}
	o.BridgeURL = strings.TrimRight(o.BridgeURL, "/")
	if o.AgentCommand == "" {
		o.AgentCommand = "/verify"
	}
	if o.CodeLength <= 0 {
		o.CodeLength = 6
	}
	if o.PollEvery <= 0 {
		o.PollEvery = 300 * time.Millisecond
	}
	s := &Server{o: o, whKey: whKey, epKey: epKey, log: o.Logger, client: o.Client,
		convs: map[string]*Conversation{}, changed: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	s.now = time.Now
	if o.Clock != nil {
		s.now = o.Clock.Now
	}
	return s, nil
}

// Handler serves the page, its API and the platform endpoint.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(webFS, "web")
	files := http.FileServerFS(static)
	mux.Handle("GET /assets/", http.StripPrefix("/assets", files))
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("POST /api/conversations", s.guard(s.createConversation))
	mux.HandleFunc("GET /api/conversations/{id}", s.getConversation)
	mux.HandleFunc("GET /api/conversations/{id}/events", s.events)
	mux.HandleFunc("POST /api/conversations/{id}/messages", s.guard(s.postMessage))
	mux.HandleFunc("POST /api/conversations/{id}/verify", s.guard(s.verify))
	mux.HandleFunc("POST /api/clock/skip", s.guard(s.skip))
	mux.HandleFunc("POST "+EndpointPath, s.platformCall)
	return loopbackOnly(mux)
}

// loopbackOnly refuses a Host that is not loopback: a web page elsewhere
// must not reach the playground through a DNS name it controls.
func loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		ip := net.ParseIP(host)
		if !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "playground: loopback hosts only", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// guard protects the page's actions from other sites: a cross-origin page
// cannot send the custom header without a CORS preflight, which is never
// granted.
func (s *Server) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Playground") != "1" {
			writeError(w, http.StatusForbidden, "missing X-Playground header")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		h(w, r)
	}
}

func (s *Server) index(w http.ResponseWriter, _ *http.Request) {
	page, _ := webFS.ReadFile("web/index.html")
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(page)
}

// changedLocked wakes every live page; the caller holds mu.
func (s *Server) changedLocked() {
	s.version++
	close(s.changed)
	s.changed = make(chan struct{})
}

// addLocked appends a timeline entry that happened now; the caller holds mu.
func (s *Server) addLocked(conv, actor, step, level, text string) {
	s.addAtLocked(s.now(), conv, actor, step, level, text)
}

// addAtLocked appends a timeline entry that happened at a given time (the
// page shows entries in time order: a state change the status API reports
// late still shows before the outbox calls it caused). The bridge shares
// the demo's clock, so its times and the platform's compare.
func (s *Server) addAtLocked(at time.Time, conv, actor, step, level, text string) {
	s.seq++
	s.timeline = append(s.timeline, Entry{Seq: s.seq, At: at, Conv: conv, Actor: actor, Step: step, Level: level, Text: text})
	if len(s.timeline) > maxTimeline {
		s.timeline = append([]Entry(nil), s.timeline[len(s.timeline)-maxTimeline:]...)
	}
	s.changedLocked()
}

func (s *Server) add(conv, actor, step, level, text string) {
	s.mu.Lock()
	s.addLocked(conv, actor, step, level, text)
	s.mu.Unlock()
}

// IdPEvent records what the development IdP did (the IdP does not know
// which conversation a login belongs to).
func (s *Server) IdPEvent(kind, text string) {
	level := "ok"
	switch kind {
	case "cancel":
		level = "warn"
	case "refused":
		level = "error"
	}
	s.add("", "idp", "identity provider", level, text)
}

// snapshotLocked copies what the page shows; the caller holds mu.
func (s *Server) snapshotLocked(c *Conversation) Snapshot {
	cp := *c
	cp.Messages = append([]Message{}, c.Messages...) // [] rather than null for the page
	snap := Snapshot{Version: s.version, Conversation: cp, Timeline: []Entry{}, IdPName: s.o.IdPName, AgentCommand: s.o.AgentCommand, TimeControls: s.o.Clock != nil}
	if s.o.Clock != nil {
		snap.ClockOffset = int(s.o.Clock.Offset().Minutes())
	}
	for _, e := range s.timeline {
		if e.Conv == c.ID || e.Conv == "" && !e.At.Before(c.StartedAt) {
			snap.Timeline = append(snap.Timeline, e)
		}
	}
	slices.SortStableFunc(snap.Timeline, func(a, b Entry) int { return a.At.Compare(b.At) })
	return snap
}

func (s *Server) conversation(w http.ResponseWriter, r *http.Request) (*Conversation, bool) {
	c, ok := s.convs[r.PathValue("id")]
	if !ok {
		writeError(w, http.StatusNotFound, "unknown conversation")
	}
	return c, ok
}

func (s *Server) getConversation(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	c, ok := s.conversation(w, r)
	var snap Snapshot
	if ok {
		snap = s.snapshotLocked(c)
	}
	s.mu.Unlock()
	if ok {
		writeJSON(w, http.StatusOK, snap)
	}
}

// events streams a snapshot on every change (Server-Sent Events).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	s.mu.Lock()
	_, ok = s.conversation(w, r)
	s.mu.Unlock()
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		s.mu.Lock()
		c := s.convs[r.PathValue("id")]
		if c == nil { // forgotten (maxConversations) while the page was open
			s.mu.Unlock()
			return
		}
		snap := s.snapshotLocked(c)
		wait := s.changed
		s.mu.Unlock()
		data, _ := json.Marshal(snap)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
			return
		}
		flusher.Flush()
	idle:
		select {
		case <-r.Context().Done():
			return
		case <-wait:
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
			flusher.Flush()
			goto idle
		}
	}
}

func (s *Server) skip(w http.ResponseWriter, r *http.Request) {
	if s.o.Clock == nil {
		writeError(w, http.StatusNotFound, "no demo clock")
		return
	}
	var req struct {
		Minutes int `json:"minutes"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Minutes < 1 || req.Minutes > 120 {
		writeError(w, http.StatusBadRequest, "minutes must be 1 to 120")
		return
	}
	s.o.Clock.Advance(time.Duration(req.Minutes) * time.Minute)
	s.add("", "demo", "demo clock", "info", fmt.Sprintf("Demo clock moved %d minutes ahead (bridge, platform and IdP share it): links and codes age as if that time had passed.", req.Minutes))
	go s.pollActive() // show expiries at once
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// isCode reports whether a consumer message looks like a confirm code.
func (s *Server) isCode(text string) bool { return bridge.NormalizeCode(text, s.o.CodeLength) != "" }
