// Package standardtest is a fake brand endpoint for the Standard Webhooks
// adapter, and helpers to build signed inbound requests.
//
// The fake checks every request against the documented contract
// (adapters/standard/README.md) independently of the adapter's code: its
// own HMAC, its own copy of the schema, exact key names, required fields
// and values. A request that breaks the contract is answered 400 and
// recorded as a violation; by default the test fails at cleanup if any was
// recorded.
package standardtest

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// The documented outbound schema (bridge → brand endpoint).

// Envelope is every outbound body: {type, timestamp, data}.
type Envelope struct {
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// MessagePost is the data of stepup.message.post.
type MessagePost struct {
	ConversationID string `json:"conversation_id"`
	ConsumerID     string `json:"consumer_id,omitempty"`
	Text           string `json:"text"`
	Audience       string `json:"audience"`
}

// IdentityAttach is the data of stepup.identity.attach.
type IdentityAttach struct {
	ConversationID string   `json:"conversation_id"`
	ConsumerID     string   `json:"consumer_id,omitempty"`
	Identity       Identity `json:"identity"`
}

// AgentsNotify is the data of stepup.agents.notify.
type AgentsNotify struct {
	ConversationID string    `json:"conversation_id"`
	ConsumerID     string    `json:"consumer_id,omitempty"`
	Text           string    `json:"text"`
	Audience       string    `json:"audience"`
	Identity       *Identity `json:"identity,omitempty"`
}

// SkillRoute is the data of stepup.skill.route.
type SkillRoute struct {
	ConversationID string `json:"conversation_id"`
	ConsumerID     string `json:"consumer_id,omitempty"`
	Skill          string `json:"skill"`
}

// Identity is the verified login in stepup.identity.attach and
// stepup.agents.notify.
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

// keys: per object, the allowed keys and which are required (exact case).
var (
	envelopeKeys = keys{required: []string{"type", "timestamp", "data"}}
	identityKeys = keys{required: []string{"provider", "issuer", "subject", "name", "email", "email_verified", "amr", "acr", "auth_time", "verified_at", "claims"}}
	dataKeys     = map[string]keys{
		"stepup.message.post":    {required: []string{"conversation_id", "text", "audience"}, optional: []string{"consumer_id"}},
		"stepup.identity.attach": {required: []string{"conversation_id", "identity"}, optional: []string{"consumer_id"}},
		"stepup.agents.notify":   {required: []string{"conversation_id", "text", "audience"}, optional: []string{"consumer_id", "identity"}},
		"stepup.skill.route":     {required: []string{"conversation_id", "skill"}, optional: []string{"consumer_id"}},
	}
)

type keys struct{ required, optional []string }

// Call is one accepted request.
type Call struct {
	ID        string    // webhook-id
	Type      string    // e.g. stepup.message.post
	Timestamp time.Time // the payload's timestamp
	Data      json.RawMessage
	Body      []byte
	// Message is the typed data: *MessagePost, *IdentityAttach,
	// *AgentsNotify or *SkillRoute.
	Message any
}

// Options tune the fake.
type Options struct {
	// Tolerance for webhook-timestamp; default 5 minutes.
	Tolerance time.Duration
	// Clock to judge webhook-timestamp; default the system clock.
	Clock bridge.Clock
	// AllowViolations stops the fake from failing the test at cleanup
	// (for tests that send bad requests on purpose).
	AllowViolations bool
}

// Server is the fake brand endpoint.
type Server struct {
	*httptest.Server
	secretText string
	secret     []byte
	opts       Options
	quit       chan struct{}

	mu         sync.Mutex
	requests   int
	calls      []Call
	bodies     map[string][]byte
	duplicates int
	violations []string
	faults     []fault
}

type fault struct {
	status int
	hang   bool
}

// NewServer starts the fake; secret is the endpoint secret (whsec_…). It
// is closed at the end of the test, which then fails on any violation
// unless opts.AllowViolations.
func NewServer(tb testing.TB, secret string, opts ...Options) *Server {
	tb.Helper()
	s := &Server{secretText: secret, quit: make(chan struct{}), bodies: map[string][]byte{}}
	if len(opts) > 0 {
		s.opts = opts[0]
	}
	if s.opts.Tolerance <= 0 {
		s.opts.Tolerance = 5 * time.Minute
	}
	if s.opts.Clock == nil {
		s.opts.Clock = bridge.SystemClock{}
	}
	key, err := decodeSecret(secret)
	if err != nil {
		tb.Fatalf("standardtest: %v", err)
	}
	s.secret = key
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(func() {
		close(s.quit)
		s.Server.Close()
		if !s.opts.AllowViolations {
			for _, v := range s.Violations() {
				tb.Errorf("standardtest: contract violation: %s", v)
			}
		}
	})
	return s
}

// Secret returns the endpoint secret as given.
func (s *Server) Secret() string { return s.secretText }

// Calls returns the accepted calls, first delivery of each webhook-id only.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Duplicates counts accepted requests whose webhook-id was already accepted.
func (s *Server) Duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.duplicates
}

// Violations lists every contract violation seen, in order.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.violations)
}

// Requests counts every request received, whatever the answer.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// FailNext answers the next n valid requests with status (e.g. 503, 400),
// without accepting them.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, fault{status: status})
	}
}

// ClearFaults drops the failures still queued by FailNext and HangNext:
// the endpoint is healthy again.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// HangNext makes the next n valid requests hang until the client gives up
// (or the server closes), without accepting them.
func (s *Server) HangNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, fault{hang: true})
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, readErr := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	s.requests++
	s.mu.Unlock()

	call, problems := s.check(r, body, readErr)
	if len(problems) > 0 {
		s.mu.Lock()
		for _, p := range problems {
			s.violations = append(s.violations, fmt.Sprintf("request %s: %s", r.Header.Get("webhook-id"), p))
		}
		s.mu.Unlock()
		http.Error(w, strings.Join(problems, "; "), http.StatusBadRequest)
		return
	}

	s.mu.Lock()
	var f *fault
	if len(s.faults) > 0 {
		f = &s.faults[0]
		s.faults = s.faults[1:]
	}
	s.mu.Unlock()
	if f != nil {
		if f.hang {
			select {
			case <-r.Context().Done():
			case <-s.quit:
			}
			return
		}
		http.Error(w, "injected failure", f.status)
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if first, seen := s.bodies[call.ID]; seen {
		s.duplicates++
		if !bytes.Equal(first, body) {
			s.violations = append(s.violations, fmt.Sprintf("request %s: webhook-id reused with a different body", call.ID))
			http.Error(w, "webhook-id reused with a different body", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK) // already processed: idempotent success
		return
	}
	s.bodies[call.ID] = body
	s.calls = append(s.calls, call)
	w.WriteHeader(http.StatusNoContent)
}

// check applies the contract; it returns every problem found.
func (s *Server) check(r *http.Request, body []byte, readErr error) (Call, []string) {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	if r.Method != http.MethodPost {
		add("method %s, want POST", r.Method)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		add("content-type %q, want application/json", r.Header.Get("Content-Type"))
	}
	if readErr != nil {
		add("reading body: %v", readErr)
	}
	id, ts, sig := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
	if id == "" || ts == "" || sig == "" {
		add("missing Standard Webhooks header(s): webhook-id=%t webhook-timestamp=%t webhook-signature=%t", id != "", ts != "", sig != "")
		return Call{}, p
	}
	if len(id) > 256 {
		add("webhook-id longer than 256 bytes")
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || strconv.FormatInt(unix, 10) != ts {
		add("webhook-timestamp %q is not integer unix seconds", ts)
	} else {
		if d := s.opts.Clock.Now().Sub(time.Unix(unix, 0)); d > s.opts.Tolerance || -d > s.opts.Tolerance {
			add("webhook-timestamp %s is %s away from now (tolerance %s)", ts, d, s.opts.Tolerance)
		}
		m := hmac.New(sha256.New, s.secret)
		m.Write([]byte(id + "." + ts + "."))
		m.Write(body)
		want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
		ok := false
		for _, e := range strings.Fields(sig) {
			if hmac.Equal([]byte(e), []byte(want)) {
				ok = true
			}
		}
		if !ok {
			add("no webhook-signature entry matches the endpoint secret")
		}
	}
	call, schemaProblems := checkBody(body)
	call.ID = id
	call.Body = body
	return call, append(p, schemaProblems...)
}

func checkBody(body []byte) (Call, []string) {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	var c Call
	if !exactKeys(body, envelopeKeys, "", add) {
		return c, p
	}
	var env Envelope
	if err := strictDecode(body, &env); err != nil {
		add("envelope: %v", err)
		return c, p
	}
	c.Type, c.Data = env.Type, env.Data
	at, err := time.Parse(time.RFC3339Nano, env.Timestamp)
	if err != nil {
		add("timestamp %q is not RFC 3339", env.Timestamp)
	}
	c.Timestamp = at
	dk, known := dataKeys[env.Type]
	if !known {
		add("unknown type %q", env.Type)
		return c, p
	}
	if !exactKeys(env.Data, dk, "data.", add) {
		return c, p
	}
	nonEmpty := func(path, v string) {
		if v == "" {
			add("%s: must not be empty", path)
		}
	}
	optional := func(path, v string, present bool) {
		if present && v == "" {
			add("%s: present but empty (omit it instead)", path)
		}
	}
	hasKey := func(raw json.RawMessage, k string) bool {
		var m map[string]json.RawMessage
		_ = json.Unmarshal(raw, &m)
		_, ok := m[k]
		return ok
	}
	checkIdentity := func(raw json.RawMessage, id *Identity) {
		var m map[string]json.RawMessage
		_ = json.Unmarshal(raw, &m)
		exactKeys(m["identity"], identityKeys, "data.identity.", add)
		nonEmpty("data.identity.provider", id.Provider)
		nonEmpty("data.identity.issuer", id.Issuer)
		nonEmpty("data.identity.subject", id.Subject)
		if id.VerifiedAt.IsZero() {
			add("data.identity.verified_at: must be set")
		}
		if id.AMR == nil {
			add("data.identity.amr: must be an array, not null")
		}
		if id.Claims == nil {
			add("data.identity.claims: must be an object, not null")
		}
	}
	switch env.Type {
	case "stepup.message.post":
		var d MessagePost
		if err := strictDecode(env.Data, &d); err != nil {
			add("data: %v", err)
			break
		}
		nonEmpty("data.conversation_id", d.ConversationID)
		optional("data.consumer_id", d.ConsumerID, hasKey(env.Data, "consumer_id"))
		nonEmpty("data.text", d.Text)
		if d.Audience != "consumer" {
			add("data.audience %q, want consumer", d.Audience)
		}
		c.Message = &d
	case "stepup.identity.attach":
		var d IdentityAttach
		if err := strictDecode(env.Data, &d); err != nil {
			add("data: %v", err)
			break
		}
		nonEmpty("data.conversation_id", d.ConversationID)
		optional("data.consumer_id", d.ConsumerID, hasKey(env.Data, "consumer_id"))
		checkIdentity(env.Data, &d.Identity)
		c.Message = &d
	case "stepup.agents.notify":
		var d AgentsNotify
		if err := strictDecode(env.Data, &d); err != nil {
			add("data: %v", err)
			break
		}
		nonEmpty("data.conversation_id", d.ConversationID)
		optional("data.consumer_id", d.ConsumerID, hasKey(env.Data, "consumer_id"))
		nonEmpty("data.text", d.Text)
		if d.Audience != "agents" {
			add("data.audience %q, want agents", d.Audience)
		}
		if hasKey(env.Data, "identity") {
			if d.Identity == nil {
				add("data.identity: null (omit it instead)")
			} else {
				checkIdentity(env.Data, d.Identity)
			}
		}
		c.Message = &d
	case "stepup.skill.route":
		var d SkillRoute
		if err := strictDecode(env.Data, &d); err != nil {
			add("data: %v", err)
			break
		}
		nonEmpty("data.conversation_id", d.ConversationID)
		optional("data.consumer_id", d.ConsumerID, hasKey(env.Data, "consumer_id"))
		nonEmpty("data.skill", d.Skill)
		c.Message = &d
	}
	return c, p
}

// exactKeys checks that raw is an object whose keys are exactly (case
// included) the required ones plus some optional ones.
func exactKeys(raw json.RawMessage, k keys, path string, add func(string, ...any)) bool {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		add("%s: must be a JSON object", strings.TrimSuffix(path, ".")+orBody(path))
		return false
	}
	ok := true
	for _, r := range k.required {
		if _, found := m[r]; !found {
			add("%s%s: required", path, r)
			ok = false
		}
	}
	for key := range m {
		if !slices.Contains(k.required, key) && !slices.Contains(k.optional, key) {
			add("%s%s: not in the schema", path, key)
			ok = false
		}
	}
	return ok
}

func orBody(path string) string {
	if path == "" {
		return "body"
	}
	return ""
}

func strictDecode(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

func decodeSecret(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, fmt.Errorf("secret must start with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("secret is not base64: %w", err)
	}
	return key, nil
}

// NewSecret returns a fresh random secret, whsec_ and 32 bytes in base64.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// The documented inbound schema (platform → bridge).

// Inbound is an inbound body: {type, timestamp, data}.
type Inbound struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      any       `json:"data"`
}

// ConversationStarted is the data of conversation.started.
type ConversationStarted struct {
	ConversationID string `json:"conversation_id"`
	ConsumerID     string `json:"consumer_id,omitempty"`
	Channel        string `json:"channel,omitempty"`
}

// MessageCreated is the data of message.created.
type MessageCreated struct {
	ConversationID string `json:"conversation_id"`
	ConsumerID     string `json:"consumer_id,omitempty"`
	Channel        string `json:"channel,omitempty"`
	Author         Author `json:"author"`
	Text           string `json:"text"`
}

// Author of a message: role consumer, agent, bot or system.
type Author struct {
	Role string `json:"role"`
	ID   string `json:"id,omitempty"`
}

// ConversationClosed is the data of conversation.closed.
type ConversationClosed struct {
	ConversationID string `json:"conversation_id"`
}

// Body renders an inbound body.
func Body(typ string, at time.Time, data any) []byte {
	b, err := json.Marshal(Inbound{Type: typ, Timestamp: at.UTC(), Data: data})
	if err != nil {
		panic(err)
	}
	return b
}

// SignedRequest returns the headers of an inbound request: Content-Type and
// the three Standard Webhooks headers, signed with secret (whsec_…). It
// panics on a malformed secret (a test bug).
func SignedRequest(secret, id string, ts time.Time, body []byte) http.Header {
	key, err := decodeSecret(secret)
	if err != nil {
		panic("standardtest: " + err.Error())
	}
	unix := strconv.FormatInt(ts.Unix(), 10)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + unix + "."))
	m.Write(body)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", unix)
	h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	return h
}
