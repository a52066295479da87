package lptest

import (
	"encoding/json"
	"maps"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// Endpoints of the Conversation Context Service v2, for FailNext.
const (
	EndpointCCSLogin  = "ccs.login"
	EndpointCCSCreate = "ccs.document.create"
)

// Default CCS v2 credentials (Conversation Orchestrator's API Authorization page).
const (
	DefaultCCSUser     = "ccs-user-42257269"
	DefaultCCSPassword = "ccs-p@55w0rd"
)

// ccsMaxTTL is CCS's 13-month retention, counted generously (13×31 days):
// the fake refuses what CCS surely would.
const ccsMaxTTL = 13 * 31 * 24 * 3600

var ccsNamespace = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

var ccsReserved = []string{"consumer", "operational", "conversation", "faas", "custom", "sde"}

// CCSDocument is one document create the fake accepted.
type CCSDocument struct {
	AccountID  string
	NameSpace  string
	SessionID  string
	TTLSeconds int64
	Payload    map[string]any
	Raw        json.RawMessage // the whole request body
}

type ccsState struct {
	tokens  map[string]bool
	logins  int
	creates int
	docs    []CCSDocument
}

// CCSAuthURL is the base to configure as ccs.auth_url (the token service,
// z{1|2|3}.context.liveperson.net in production).
func (f *Fake) CCSAuthURL() string { return f.srv.URL }

// CCSURL is the base to configure as ccs.url (z{1|2|3}.ccs.liveperson.net).
func (f *Fake) CCSURL() string { return f.srv.URL }

// CCSDocuments returns the accepted document creates.
func (f *Fake) CCSDocuments() []CCSDocument {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ccs.docs)
}

// CCSCounts returns the token logins and document create calls (accepted
// or not) the fake received.
func (f *Fake) CCSCounts() (logins, creates int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ccs.logins, f.ccs.creates
}

// ExpireCCSTokens makes every CCS token issued so far invalid: the next
// call with one gets 401.
func (f *Fake) ExpireCCSTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ccs.tokens = map[string]bool{}
}

// ccsLogin is Conversation Orchestrator's v2 login: POST with Basic
// base64(user:pass), nothing else; it answers the token.
func (f *Fake) ccsLogin(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.ccs.logins++
	f.mu.Unlock()
	if code, ok := f.injected(EndpointCCSLogin); ok {
		writeJSON(w, code, map[string]string{"error": "injected failure"})
		return
	}
	user, pass, ok := r.BasicAuth()
	switch {
	case r.URL.RawQuery != "":
		f.violation("ccs login with a query %q", r.URL.RawQuery)
	case len(readAll(r)) != 0:
		f.violation("ccs login with a body")
	case !ok:
		f.violation("ccs login without Basic authorization")
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return
	case user != f.cfg.CCSUser || pass != f.cfg.CCSPassword:
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return
	default:
		tok := randomID()
		f.mu.Lock()
		f.ccs.tokens[tok] = true
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]string{"access_token": tok})
		return
	}
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request"})
}

// ccsCreate is POST /v2/context/document/create?access_token=…
// (ccs.v2.save-properties.request.json → 201).
func (f *Fake) ccsCreate(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.ccs.creates++
	f.mu.Unlock()
	if code, ok := f.injected(EndpointCCSCreate); ok {
		writeJSON(w, code, map[string]string{"error": "injected failure"})
		return
	}
	q := r.URL.Query()
	tok := q.Get("access_token")
	if len(q) != 1 || len(q["access_token"]) != 1 || tok == "" {
		f.violation("ccs create: query is not ?access_token=<token>: %q", strings.Join(slices.Sorted(maps.Keys(q)), ","))
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return
	}
	if r.Header.Get("Authorization") != "" {
		f.violation("ccs create: an Authorization header next to access_token")
	}
	f.mu.Lock()
	valid := f.ccs.tokens[tok]
	f.mu.Unlock()
	if !valid {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "token expired"})
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		f.violation("ccs create: content type %q", r.Header.Get("Content-Type"))
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "content type"})
		return
	}
	var body struct {
		AccountID  *string         `json:"accountId"`
		NameSpace  *string         `json:"nameSpace"`
		SessionID  *string         `json:"sessionId"`
		TTLSeconds *int64          `json:"ttlSeconds"`
		Payload    json.RawMessage `json:"payload"`
	}
	var payload map[string]any
	bad := func(format string, args ...any) {
		f.violation("ccs create: "+format, args...)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request"})
	}
	raw := readAll(r)
	switch {
	case strict(raw, &body) != nil:
		bad("body not {accountId,nameSpace,sessionId,ttlSeconds,payload}")
	case body.AccountID == nil || body.NameSpace == nil || body.SessionID == nil || body.TTLSeconds == nil || len(body.Payload) == 0:
		bad("body lacks one of accountId, nameSpace, sessionId, ttlSeconds, payload")
	case *body.AccountID != f.cfg.Account:
		bad("accountId %q is not the account", *body.AccountID)
	case !ccsNamespace.MatchString(*body.NameSpace):
		bad("nameSpace %q is not [A-Za-z0-9_]", *body.NameSpace)
	case slices.Contains(ccsReserved, strings.ToLower(*body.NameSpace)):
		bad("nameSpace %q is reserved", *body.NameSpace)
	case *body.SessionID == "":
		bad("empty sessionId")
	case *body.TTLSeconds <= 0 || *body.TTLSeconds > ccsMaxTTL:
		bad("ttlSeconds %d outside (0, 13 months]", *body.TTLSeconds)
	case json.Unmarshal(body.Payload, &payload) != nil || payload == nil:
		bad("payload is not an object")
	default:
		f.mu.Lock()
		f.ccs.docs = append(f.ccs.docs, CCSDocument{AccountID: *body.AccountID, NameSpace: *body.NameSpace, SessionID: *body.SessionID, TTLSeconds: *body.TTLSeconds, Payload: payload, Raw: raw})
		f.mu.Unlock()
		// ccs.v2.save-properties.response.json
		writeJSON(w, http.StatusCreated, map[string]any{"documentKey": *body.AccountID + ":" + *body.NameSpace + ":" + *body.SessionID, "tenantId": *body.AccountID, "success": true})
	}
}
