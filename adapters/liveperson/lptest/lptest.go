// Package lptest is a fake LivePerson for tests: the domain API (CSDS), the
// agent login and session refresh (agentVep), the agent messaging websocket
// (facadeMsg), the Connector API (Sentinel app token, IdP ConsumerJWS,
// SEND on asyncMessagingEnt), the Conversation Context Service v2 (login,
// document create) and the webhook sender, on one httptest TLS
// server. It checks every request against the shapes the reference
// documents (liveperson.md §2.4, §3.1-§3.3, §3.5; node-agent-sdk; the
// connector-api.* and sentinel.* samples) and answers anything else with an
// error and a recorded violation, so a test can assert that none occurred.
package lptest

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// Config is the fake account.
type Config struct {
	Account      string // default "42257269"
	Username     string // default "stepup-bot"
	Password     string // default "bot-password"
	UserID       string // the bot's user id, default "4711"
	AppClientID  string // app install client_id, default "81fad476-88af-4d08-bc0e-20bc69439ed4"
	AppSecret    string // app install client_secret, default the reference vectors' secret
	SessionTTL   time.Duration
	RefreshCSRF  string
	ExtraDomains map[string]string // more services in the domain API
	// ConnectorClientID and ConnectorSecret are the app install of the
	// brand's Connector API connector (scope msg.consumer); defaults: the
	// webhook app install's.
	ConnectorClientID string
	ConnectorSecret   string
	// AppTokenTTL is the AppJWT lifetime, default one hour as documented.
	AppTokenTTL time.Duration
	// CCSUser and CCSPassword are the Conversation Context Service v2
	// credentials; defaults DefaultCCSUser and DefaultCCSPassword.
	CCSUser     string
	CCSPassword string
}

// Message is a published message as the fake recorded it.
type Message struct {
	Conversation string
	Text         string
	Audience     string // "" (everyone) or AGENTS_AND_MANAGERS
	ExternalID   string
}

// Transfer is a skill transfer as recorded.
type Transfer struct {
	Conversation string
	Skill        string
	// Unassigned is the agent the same request removed ("" when none was
	// assigned).
	Unassigned string
}

// Fake is a running fake LivePerson.
type Fake struct {
	cfg Config
	srv *httptest.Server

	mu         sync.Mutex
	bearers    map[string]bool
	profiles   map[string]json.RawMessage // consumer id → GetUserProfile body
	open       map[string]bool            // conversations the agent API knows
	managers   map[string]bool            // conversations the bot joined
	messages   []Message
	transfers  []Transfer
	violations []string
	logins     int
	refreshes  int
	csds       int
	wsConns    int
	failNext   map[string][]int  // request type or endpoint → codes to answer, in turn
	assigned   map[string]string // conversation → ASSIGNED_AGENT id
	consumers  map[string]string // open conversation → its CONSUMER id (Connector API)
	connector  connectorState
	ccs        ccsState
	hook       func(Notification)
}

// Start runs a fake.
func Start(cfg Config) *Fake {
	if cfg.Account == "" {
		cfg.Account = "42257269"
	}
	if cfg.Username == "" {
		cfg.Username = "stepup-bot"
	}
	if cfg.Password == "" {
		cfg.Password = "bot-password"
	}
	if cfg.UserID == "" {
		cfg.UserID = "4711"
	}
	if cfg.AppClientID == "" {
		cfg.AppClientID = "81fad476-88af-4d08-bc0e-20bc69439ed4"
	}
	if cfg.AppSecret == "" {
		cfg.AppSecret = "rl9hacst6kqilbofup64n11ga3"
	}
	if cfg.ConnectorClientID == "" {
		cfg.ConnectorClientID = cfg.AppClientID
	}
	if cfg.ConnectorSecret == "" {
		cfg.ConnectorSecret = cfg.AppSecret
	}
	if cfg.CCSUser == "" {
		cfg.CCSUser = DefaultCCSUser
	}
	if cfg.CCSPassword == "" {
		cfg.CCSPassword = DefaultCCSPassword
	}
	if cfg.AppTokenTTL <= 0 {
		cfg.AppTokenTTL = time.Hour
	}
	f := &Fake{cfg: cfg, bearers: map[string]bool{}, profiles: map[string]json.RawMessage{}, open: map[string]bool{}, managers: map[string]bool{}, failNext: map[string][]int{},
		assigned: map[string]string{}, consumers: map[string]string{}, connector: newConnectorState(), ccs: ccsState{tokens: map[string]bool{}}}
	mux := http.NewServeMux()
	acc := "/api/account/" + cfg.Account
	mux.HandleFunc("GET "+acc+"/service/baseURI.json", f.domains)
	mux.HandleFunc("POST "+acc+"/login", f.login)
	mux.HandleFunc("POST "+acc+"/refresh", f.refresh)
	mux.Handle("GET /ws_api/account/"+cfg.Account+"/messaging/brand/{bearer}", websocket.Server{Handshake: f.handshake, Handler: f.messaging})
	mux.HandleFunc("POST /sentinel/api/account/"+cfg.Account+"/app/token", f.appToken)
	mux.HandleFunc("POST "+acc+"/consumer", f.consumerJWS)
	mux.HandleFunc("POST "+acc+"/messaging/consumer/conversation/send", f.send)
	mux.HandleFunc("POST /v2/authenticate/login", f.ccsLogin)
	mux.HandleFunc("POST /v2/context/document/create", f.ccsCreate)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.violation("unexpected request %s %s", r.Method, r.URL.Path)
		http.Error(w, "not found", http.StatusNotFound)
	})
	f.srv = httptest.NewTLSServer(mux)
	return f
}

// NewTest starts a fake that closes when the test ends.
func NewTest(t testing.TB, cfg Config) *Fake {
	f := Start(cfg)
	t.Cleanup(f.Close)
	return f
}

// Close stops the server.
func (f *Fake) Close() { f.srv.Close() }

// URL is the base URL (the domain API base to configure as csds_url).
func (f *Fake) URL() string { return f.srv.URL }

// Host is host:port, what the domain API lists for every service.
func (f *Fake) Host() string { return strings.TrimPrefix(f.srv.URL, "https://") }

// Client trusts the fake's certificate.
func (f *Fake) Client() *http.Client { return f.srv.Client() }

// TLSConfig trusts the fake's certificate (for the websocket).
func (f *Fake) TLSConfig() *tls.Config {
	return f.srv.Client().Transport.(*http.Transport).TLSClientConfig
}

// Config is the fake's configuration with defaults filled in.
func (f *Fake) Config() Config { return f.cfg }

// OpenConversation makes the agent API know an open conversation.
func (f *Fake) OpenConversation(conv string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.open[conv] = true
}

// SetProfile sets the GetUserProfile answer body for a consumer.
func (f *Fake) SetProfile(consumer string, body any) {
	b, _ := json.Marshal(body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.profiles[consumer] = b
}

// AuthenticatedProfile is the profile of a consumer LivePerson
// authenticated with an id_token whose lp_sdes carry customerId.
func AuthenticatedProfile(customerID string) map[string]any {
	return map[string]any{
		"firstName": "", "lastName": "",
		"authenticatedData": map[string]any{"lp_sdes": []any{
			map[string]any{"type": "ctmrinfo", "info": map[string]any{"customerId": customerID}},
		}},
	}
}

// FailNext makes the next request of type typ (a websocket request type
// or an Endpoint* constant) answer code; calls add up, one per request.
func (f *Fake) FailNext(typ string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext[typ] = append(f.failNext[typ], code)
}

// ExpireSessions invalidates every bearer (the websocket refuses them).
func (f *Fake) ExpireSessions() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bearers = map[string]bool{}
}

// Messages returns the published messages.
func (f *Fake) Messages() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.messages)
}

// Transfers returns the skill transfers.
func (f *Fake) Transfers() []Transfer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.transfers)
}

// Violations lists requests not shaped as documented.
func (f *Fake) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.violations)
}

// Counts returns logins, refreshes, domain API calls and websocket connections.
func (f *Fake) Counts() (logins, refreshes, csds, ws int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logins, f.refreshes, f.csds, f.wsConns
}

func (f *Fake) violation(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.violations = append(f.violations, fmt.Sprintf(format, args...))
}

// strict decodes JSON refusing unknown fields.
func strict(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// domains is the domain API, all services at once (domain-api.response.json).
func (f *Fake) domains(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.csds++
	f.mu.Unlock()
	if r.URL.Query().Get("version") != "1.0" {
		f.violation("domain API without version=1.0")
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "version"})
		return
	}
	type entry struct {
		Service string `json:"service"`
		Account string `json:"account"`
		BaseURI string `json:"baseURI"`
	}
	var list []entry
	for _, s := range []string{"agentVep", "facadeMsg", "asyncMessagingEnt", "sentinel", "idp", "msgHist"} {
		list = append(list, entry{s, f.cfg.Account, f.Host()})
	}
	for s, h := range f.cfg.ExtraDomains {
		list = append(list, entry{s, f.cfg.Account, h})
	}
	writeJSON(w, http.StatusOK, map[string]any{"baseURIs": list})
}

// login is the agent login (node-agent-sdk ExternalServices.login).
func (f *Fake) login(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.logins++
	f.mu.Unlock()
	var body struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	raw := readAll(r)
	switch {
	case r.URL.Query().Get("v") != "1.3":
		f.violation("login without v=1.3")
	case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"):
		f.violation("login content type %q", r.Header.Get("Content-Type"))
	case strict(raw, &body) != nil:
		f.violation("login body not {username,password}")
	case body.Username != f.cfg.Username || body.Password != f.cfg.Password:
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "bad credentials"})
		return
	default:
		bearer := randomID()
		csrf := randomID()
		f.mu.Lock()
		f.bearers[bearer] = true
		f.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "session_id", Value: csrf, Path: "/", Secure: true, HttpOnly: true})
		writeJSON(w, http.StatusOK, map[string]any{"bearer": bearer, "csrf": csrf, "config": map[string]any{"userId": f.cfg.UserID, "userPid": "pid-" + f.cfg.UserID}})
		return
	}
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request"})
}

func (f *Fake) refresh(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.refreshes++
	f.mu.Unlock()
	var body struct {
		CSRF string `json:"csrf"`
	}
	ck, err := r.Cookie("session_id")
	switch {
	case r.URL.Query().Get("v") != "1.3":
		f.violation("refresh without v=1.3")
	case strict(readAll(r), &body) != nil || body.CSRF == "":
		f.violation("refresh body not {csrf}")
	case err != nil || ck.Value != body.CSRF:
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "session"})
		return
	default:
		writeJSON(w, http.StatusOK, map[string]any{})
		return
	}
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request"})
}

func (f *Fake) handshake(cfg *websocket.Config, r *http.Request) error {
	bearer := r.PathValue("bearer")
	f.mu.Lock()
	ok := f.bearers[bearer]
	f.mu.Unlock()
	if r.URL.Query().Get("v") != "2.1" {
		f.violation("messaging websocket without v=2.1")
		return fmt.Errorf("version")
	}
	if !ok {
		return fmt.Errorf("unknown bearer") // x/net/websocket answers 403
	}
	return nil
}

type wsReq struct {
	Kind     string          `json:"kind"`
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Body     json.RawMessage `json:"body"`
	Metadata json.RawMessage `json:"metadata"`
}

func (f *Fake) messaging(ws *websocket.Conn) {
	f.mu.Lock()
	f.wsConns++
	f.mu.Unlock()
	// A notification first: clients must skip what is not their answer.
	_ = websocket.JSON.Send(ws, map[string]any{"kind": "notification", "type": ".ams.routing.RoutingTaskNotification", "body": map[string]any{"changes": []any{}}})
	for {
		var raw []byte
		if err := websocket.Message.Receive(ws, &raw); err != nil {
			return
		}
		var req wsReq
		if err := strict(raw, &req); err != nil || req.Kind != "req" || req.ID == "" {
			f.violation("websocket message not {kind:req,id,type,body[,metadata]}")
			continue
		}
		code, body := f.answer(req)
		_ = websocket.JSON.Send(ws, map[string]any{"kind": "resp", "reqId": req.ID, "code": code, "type": req.Type + "$Response", "body": body})
	}
}

func (f *Fake) answer(req wsReq) (int, any) {
	if code, ok := f.injected(req.Type); ok {
		return code, map[string]string{"msg": "injected failure"}
	}
	bad := func(format string, args ...any) (int, any) {
		f.violation(req.Type+": "+format, args...)
		return 400, map[string]string{"msg": "bad request"}
	}
	switch req.Type {
	case ".ams.userprofile.GetUserProfile":
		// node-agent-sdk sends the consumer id itself as the body.
		var consumer string
		if json.Unmarshal(req.Body, &consumer) != nil || consumer == "" {
			return bad("body is not the consumer id")
		}
		f.mu.Lock()
		p, ok := f.profiles[consumer]
		f.mu.Unlock()
		if !ok {
			return 200, map[string]any{}
		}
		return 200, p
	case ".ams.cm.UpdateConversationField":
		var b struct {
			ConversationID    string `json:"conversationId"`
			ConversationField []struct {
				Field  string `json:"field"`
				Type   string `json:"type"`
				Role   string `json:"role"`
				UserID string `json:"userId"`
				Skill  string `json:"skill"`
			} `json:"conversationField"`
		}
		if strict(req.Body, &b) != nil || b.ConversationID == "" || len(b.ConversationField) == 0 {
			return bad("body not {conversationId, conversationField:[...]}")
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.open[b.ConversationID] {
			return 404, map[string]string{"msg": "conversation not found"}
		}
		// The request is checked whole, then applied: LivePerson applies
		// the fields of one request together (liveperson.md §3.5).
		var join, unassign bool
		skill := ""
		for _, c := range b.ConversationField {
			switch {
			case c.Field == "ParticipantsChange" && c.Type == "ADD" && c.Role == "MANAGER":
				if c.UserID != f.cfg.Account+"."+f.cfg.UserID {
					f.violations = append(f.violations, "join: userId is not {account}.{userId}")
					return 400, map[string]string{"msg": "bad user"}
				}
				if f.managers[b.ConversationID] {
					return 400, map[string]string{"msg": "already a participant"}
				}
				join = true
			case c.Field == "ParticipantsChange" && c.Type == "REMOVE" && c.Role == "ASSIGNED_AGENT" && c.UserID == "" && c.Skill == "":
				// Assumption (undocumented): removing an agent that is
				// not there is refused as a bad request.
				if f.assigned[b.ConversationID] == "" {
					return 400, map[string]string{"msg": "no participant with role ASSIGNED_AGENT"}
				}
				unassign = true
			case c.Field == "Skill" && c.Type == "UPDATE" && c.Skill != "" && c.Role == "" && c.UserID == "":
				skill = c.Skill
			default:
				f.violations = append(f.violations, fmt.Sprintf("UpdateConversationField: unexpected field %+v", c))
				return 400, map[string]string{"msg": "bad field"}
			}
		}
		if skill == "" && unassign {
			f.violations = append(f.violations, "UpdateConversationField: ASSIGNED_AGENT removed without a transfer")
			return 400, map[string]string{"msg": "bad field"}
		}
		if skill != "" {
			if !f.managers[b.ConversationID] {
				return 403, map[string]string{"msg": "not a participant"}
			}
			if f.assigned[b.ConversationID] != "" && !unassign {
				// LivePerson accepts it, but the agent keeps the
				// conversation: not a transfer as documented.
				f.violations = append(f.violations, "skill transfer without removing the ASSIGNED_AGENT "+f.assigned[b.ConversationID])
			}
			t := Transfer{Conversation: b.ConversationID, Skill: skill}
			if unassign {
				t.Unassigned = f.assigned[b.ConversationID]
				delete(f.assigned, b.ConversationID)
			}
			f.transfers = append(f.transfers, t)
		}
		if join {
			f.managers[b.ConversationID] = true
		}
		return 200, map[string]any{}
	case ".ams.ms.PublishEvent":
		var b struct {
			DialogID string `json:"dialogId"`
			Event    struct {
				Type        string `json:"type"`
				ContentType string `json:"contentType"`
				Message     string `json:"message"`
			} `json:"event"`
			MessageAudience string `json:"messageAudience"`
		}
		if strict(req.Body, &b) != nil || b.DialogID == "" || b.Event.Type != "ContentEvent" || b.Event.ContentType != "text/plain" || b.Event.Message == "" {
			return bad("body not {dialogId, event:{type:ContentEvent, contentType:text/plain, message}[, messageAudience]}")
		}
		if b.MessageAudience != "" && b.MessageAudience != "AGENTS_AND_MANAGERS" && b.MessageAudience != "ALL" {
			return bad("messageAudience %q", b.MessageAudience)
		}
		var md []struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		}
		if len(req.Metadata) > 0 && (strict(req.Metadata, &md) != nil || len(md) != 1 || md[0].Type != "ExternalId" || md[0].ID == "") {
			return bad("metadata not [{type:ExternalId,id}]")
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.open[b.DialogID] {
			return 404, map[string]string{"msg": "dialog not found"}
		}
		if !f.managers[b.DialogID] {
			return 403, map[string]string{"msg": "not a participant"}
		}
		ext := ""
		if len(md) == 1 {
			ext = md[0].ID
		}
		m := Message{Conversation: b.DialogID, Text: b.Event.Message, Audience: b.MessageAudience, ExternalID: ext}
		f.messages = append(f.messages, m)
		if f.hook != nil {
			// As LivePerson's Webhooks: the message goes out to the
			// connector's app install, after the answer.
			go f.hook(Notification{Message: m, Sequence: len(f.messages), Body: f.notification(m, len(f.messages))})
		}
		return 200, map[string]any{"sequence": len(f.messages)}
	}
	return bad("unknown request type")
}

// Sign is LivePerson's default webhook signature of body: "sha1=" and the
// base64 HMAC-SHA1 under the app install secret (liveperson.md §2.4).
func (f *Fake) Sign(body []byte) string {
	m := hmac.New(sha1.New, []byte(f.cfg.AppSecret))
	m.Write(body)
	return "sha1=" + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Headers are the webhook headers LivePerson sends with signature sig.
func (f *Fake) Headers(sig string) http.Header {
	return http.Header{
		"Content-Type":            {"application/json"},
		"X-Liveperson-Account-Id": {f.cfg.Account},
		"X-Liveperson-Client-Id":  {f.cfg.AppClientID},
		"X-Liveperson-Signature":  {sig},
	}
}

// TokenRequest is LivePerson's code-flow call to the brand's token endpoint
// (liveperson.md §1.3): Basic client auth, form body.
func TokenRequest(tokenURL, clientID, clientSecret, code, redirectURI string) *http.Request {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
	r, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(clientID, clientSecret)
	return r
}

func randomID() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func readAll(r *http.Request) []byte {
	var b bytes.Buffer
	_, _ = b.ReadFrom(http.MaxBytesReader(nil, r.Body, 1<<20))
	return b.Bytes()
}
