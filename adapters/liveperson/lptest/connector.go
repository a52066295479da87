package lptest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Endpoints of the Connector API, for FailNext.
const (
	EndpointAppToken    = "sentinel.app.token"
	EndpointConsumerJWS = "idp.consumer"
	EndpointSend        = "connector.send"
)

// ConsumerEvent is one SEND request the fake accepted, on behalf of a consumer.
type ConsumerEvent struct {
	Type         string // ms.PublishEvent or userprofile.SetUserProfile
	Consumer     string // lp_consumer_id of the ConsumerJWS
	ExtConsumer  string // ext_consumer_id of the ConsumerJWS
	Conversation string // dialogId (ms.PublishEvent)
	Text         string // ContentEvent message
	SDEs         json.RawMessage
	Raw          json.RawMessage // the whole request body
}

// Notification is a messaging notification the fake's Webhooks send to the
// connector's app install after an agent-side message was published.
type Notification struct {
	Message  Message
	Sequence int
	Body     []byte // ms.MessagingEventNotification as LivePerson sends it
}

type connectorState struct {
	key       *rsa.PrivateKey
	appTokens map[string]time.Time // AppJWT → expiry
	jws       map[string][2]string // ConsumerJWS → {ext, lp}
	ext       map[string]string    // ext_consumer_id → lp_consumer_id
	fetches   int
	jwsCount  int
	sends     int
	events    []ConsumerEvent
}

func newConnectorState() connectorState {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return connectorState{key: k, appTokens: map[string]time.Time{}, jws: map[string][2]string{}, ext: map[string]string{}}
}

// AssignAgent makes agent the conversation's ASSIGNED_AGENT.
func (f *Fake) AssignAgent(conv, agent string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.assigned[conv] = agent
}

// AssignedAgent is the conversation's ASSIGNED_AGENT ("" for none).
func (f *Fake) AssignedAgent(conv string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.assigned[conv]
}

// RegisterConsumer makes LivePerson's IdP map the connector's
// ext_consumer_id to lp (otherwise it derives a 64-hex id, as real ids look).
func (f *Fake) RegisterConsumer(ext, lp string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connector.ext[ext] = lp
}

// OpenConsumerConversation opens conv with consumer as its CONSUMER: SEND
// on behalf of another consumer is refused.
func (f *Fake) OpenConsumerConversation(conv, consumer string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.open[conv] = true
	f.consumers[conv] = consumer
}

// OnNotification sets the connector app install's webhook: called for every
// message published on the agent side, as LivePerson's Webhooks do.
func (f *Fake) OnNotification(hook func(Notification)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = hook
}

// ConsumerEvents returns the accepted SEND requests.
func (f *Fake) ConsumerEvents() []ConsumerEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.connector.events)
}

// ConnectorCounts returns AppJWTs issued, ConsumerJWSs issued and SEND calls.
func (f *Fake) ConnectorCounts() (appTokens, consumerJWS, sends int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connector.fetches, f.connector.jwsCount, f.connector.sends
}

// ExpireAppTokens makes every AppJWT issued so far invalid (Sentinel key
// roll, revoked install): the next call with one gets 401 40102.
func (f *Fake) ExpireAppTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connector.appTokens = map[string]time.Time{}
}

// PublicKey verifies the fake's AppJWTs and ConsumerJWSs.
func (f *Fake) PublicKey() *rsa.PublicKey { return &f.connector.key.PublicKey }

func (f *Fake) injected(endpoint string) (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	codes := f.failNext[endpoint]
	if len(codes) == 0 {
		return 0, false
	}
	f.failNext[endpoint] = codes[1:]
	return codes[0], true
}

func formContent(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

func jsonContent(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// appToken is Sentinel's client_credentials grant (liveperson.md §3.2; DC
// Connector API authorization-and-authentication: v=1.0 and grant_type in
// the query, client_id and client_secret in the form body).
func (f *Fake) appToken(w http.ResponseWriter, r *http.Request) {
	if code, ok := f.injected(EndpointAppToken); ok {
		writeJSON(w, code, map[string]string{"error": "injected failure"})
		return
	}
	q := r.URL.Query()
	if !formContent(r) {
		f.violation("app token: content type %q", r.Header.Get("Content-Type"))
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	if err := r.ParseForm(); err != nil {
		f.violation("app token: form body does not parse")
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	grant := q["grant_type"]
	grant = append(grant, r.PostForm["grant_type"]...)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range r.PostForm {
			if !yield(k) {
				return
			}
		}
	})
	switch {
	case q.Get("v") != "1.0":
		f.violation("app token without v=1.0")
	case len(grant) != 1 || grant[0] != "client_credentials":
		f.violation("app token: grant_type=client_credentials once, in the query or the body")
	case !slices.Equal(slices.DeleteFunc(keys, func(k string) bool { return k == "grant_type" }), []string{"client_id", "client_secret"}):
		f.violation("app token: form keys %v, want client_id and client_secret", keys)
	case r.PostForm.Get("client_id") != f.cfg.ConnectorClientID || r.PostForm.Get("client_secret") != f.cfg.ConnectorSecret:
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	default:
		now := time.Now()
		exp := now.Add(f.cfg.AppTokenTTL)
		// The claims of sentinel.appjwt.decoded-payload.json, RS256 with a kid.
		t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
			"aud": f.cfg.Account, "azp": f.cfg.ConnectorClientID, "scope": "msg.consumer", "iss": "Sentinel",
			"exp": exp.Unix(), "iat": now.Unix(),
		})
		t.Header["kid"] = "appjwt-13-05-17"
		signed, err := t.SignedString(f.connector.key)
		if err != nil {
			panic(err)
		}
		f.mu.Lock()
		f.connector.fetches++
		f.connector.appTokens[signed] = exp
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]string{"access_token": signed, "token_type": "Bearer"})
		return
	}
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
}

// errResp is the Send API's documented 401 body
// (connector-api.error-response.appjwt-missing.json).
func errResp(w http.ResponseWriter, code int, title, details string) {
	writeJSON(w, http.StatusUnauthorized, map[string]any{
		"kind": "resp", "code": 401, "type": ".ReqBody$ErrorResp",
		"body": map[string]any{"title": title, "details": details, "errorCode": code},
	})
}

// appJWT checks the Authorization header: the bare AppJWT, as documented
// (no "Bearer" scheme), issued by this fake and not expired.
func (f *Fake) appJWT(w http.ResponseWriter, r *http.Request, what string) bool {
	v := r.Header.Get("Authorization")
	if v == "" {
		errResp(w, 40105, "AppJWT is missing", "AUTHORIZATION header is not present")
		return false
	}
	if strings.HasPrefix(strings.ToLower(v), "bearer ") {
		f.violation("%s: Authorization carries a scheme; the AppJWT goes in bare", what)
	}
	f.mu.Lock()
	exp, ok := f.connector.appTokens[v]
	f.mu.Unlock()
	if !ok || !time.Now().Before(exp) {
		errResp(w, 40102, "Invalid AppJWT", "AppJWT has expired or is invalid")
		return false
	}
	return true
}

// consumerJWS is the IdP's ConsumerJWS for an ext_consumer_id
// (connector-api.idp-consumer.*.json).
func (f *Fake) consumerJWS(w http.ResponseWriter, r *http.Request) {
	if code, ok := f.injected(EndpointConsumerJWS); ok {
		writeJSON(w, code, map[string]string{"error": "injected failure"})
		return
	}
	if r.URL.Query().Get("v") != "1.0" {
		f.violation("consumer JWS without v=1.0")
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "version"})
		return
	}
	if !f.appJWT(w, r, "consumer JWS") {
		return
	}
	var body struct {
		ExtConsumerID string `json:"ext_consumer_id"`
	}
	if !jsonContent(r) || strict(readAll(r), &body) != nil || body.ExtConsumerID == "" {
		f.violation("consumer JWS: body not application/json {ext_consumer_id}")
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request"})
		return
	}
	f.mu.Lock()
	lp, ok := f.connector.ext[body.ExtConsumerID]
	f.mu.Unlock()
	if !ok {
		sum := sha256.Sum256([]byte(f.cfg.Account + "\x00" + body.ExtConsumerID))
		lp = hex.EncodeToString(sum[:])
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"account_id": f.cfg.Account, "ext_consumer_id": body.ExtConsumerID, "lp_consumer_id": lp})
	t.Header["kid"] = "appjwt-13-05-17"
	signed, err := t.SignedString(f.connector.key)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	f.connector.jwsCount++
	f.connector.jws[signed] = [2]string{body.ExtConsumerID, lp}
	f.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]string{"token": signed})
}

type sendReq struct {
	Kind string          `json:"kind"`
	ID   json.RawMessage `json:"id"`
	Type string          `json:"type"`
	Body json.RawMessage `json:"body"`
}

// send is the Send API's SEND (connector-api.send.*.json): one request,
// on behalf of the consumer the ConsumerJWS names.
func (f *Fake) send(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.connector.sends++
	f.mu.Unlock()
	if code, ok := f.injected(EndpointSend); ok {
		writeJSON(w, code, map[string]string{"error": "injected failure"})
		return
	}
	if r.URL.Query().Get("v") != "3" {
		f.violation("SEND without v=3")
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "version"})
		return
	}
	if !f.appJWT(w, r, "SEND") {
		return
	}
	on := r.Header.Get("X-LP-ON-BEHALF")
	if on == "" {
		errResp(w, 40104, "ConsumerJWS is missing", "X_ON_BEHALF_HEADER is not present")
		return
	}
	f.mu.Lock()
	who, ok := f.connector.jws[on]
	f.mu.Unlock()
	if !ok {
		errResp(w, 40103, "Invalid ConsumerJWS", "ConsumerJWS is invalid")
		return
	}
	raw := readAll(r)
	var req sendReq
	var id string
	if !jsonContent(r) || strict(raw, &req) != nil || req.Kind != "req" || json.Unmarshal(req.ID, &id) != nil || id == "" {
		f.violation("SEND: body not application/json {kind:req, id:string, type, body}")
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request"})
		return
	}
	ev := ConsumerEvent{Type: req.Type, Consumer: who[1], ExtConsumer: who[0], Raw: raw}
	bad := func(format string, args ...any) {
		f.violation("SEND "+req.Type+": "+format, args...)
		writeJSON(w, http.StatusBadRequest, map[string]any{"reqId": id, "code": 400, "body": map[string]string{"msg": "bad request"}})
	}
	switch req.Type {
	case "ms.PublishEvent":
		var b struct {
			DialogID string `json:"dialogId"`
			Event    struct {
				Type        string `json:"type"`
				ContentType string `json:"contentType"`
				Message     string `json:"message"`
			} `json:"event"`
		}
		if strict(req.Body, &b) != nil || b.DialogID == "" || b.Event.Type != "ContentEvent" || b.Event.ContentType != "text/plain" || b.Event.Message == "" {
			bad("body not {dialogId, event:{type:ContentEvent, contentType:text/plain, message}}")
			return
		}
		f.mu.Lock()
		open, owner := f.open[b.DialogID], f.consumers[b.DialogID]
		f.mu.Unlock()
		if !open || owner != who[1] {
			writeJSON(w, http.StatusBadRequest, map[string]any{"reqId": id, "code": 400, "body": map[string]string{"msg": "dialog not found for this consumer"}})
			return
		}
		ev.Conversation, ev.Text = b.DialogID, b.Event.Message
	case "userprofile.SetUserProfile":
		var b struct {
			AuthenticatedData *struct {
				SDEs []json.RawMessage `json:"lp_sdes"`
			} `json:"authenticatedData"`
		}
		if strict(req.Body, &b) != nil || b.AuthenticatedData == nil || len(b.AuthenticatedData.SDEs) == 0 {
			bad("body not {authenticatedData:{lp_sdes:[...]}}")
			return
		}
		for _, sde := range b.AuthenticatedData.SDEs {
			if err := checkSDE(sde); err != nil {
				bad("%v", err)
				return
			}
		}
		sdes, _ := json.Marshal(b.AuthenticatedData.SDEs)
		ev.SDEs = sdes
	default:
		bad("type not used by a connector here")
		return
	}
	f.mu.Lock()
	f.connector.events = append(f.connector.events, ev)
	seq := len(f.connector.events) - 1
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"reqId": id, "code": "OK", "body": map[string]any{"sequence": seq}})
}

// checkSDE accepts the authenticated-flow SDEs (liveperson.md §3.3, §3.8):
// ctmrinfo {type, info{...}} and personal {type, personal{...}}.
func checkSDE(raw json.RawMessage) error {
	var s struct {
		Type     string         `json:"type"`
		Info     map[string]any `json:"info"`
		Personal map[string]any `json:"personal"`
	}
	if err := strict(raw, &s); err != nil {
		return fmt.Errorf("SDE not {type, info|personal}")
	}
	switch {
	case s.Type == "ctmrinfo" && len(s.Info) > 0 && s.Personal == nil:
	case s.Type == "personal" && len(s.Personal) > 0 && s.Info == nil:
	default:
		return fmt.Errorf("SDE type %q is not ctmrinfo{info} or personal{personal}", s.Type)
	}
	return nil
}

// notification is the ms.MessagingEventNotification LivePerson's Webhooks
// send for a published message (ms.MessagingEventNotification.*.json).
func (f *Fake) notification(m Message, seq int) []byte {
	change := map[string]any{
		"sequence": seq, "originatorId": f.cfg.Account + "." + f.cfg.UserID,
		"originatorMetadata": map[string]string{"id": f.cfg.Account + "." + f.cfg.UserID, "role": "MANAGER"},
		"serverTimestamp":    time.Now().UnixMilli(),
		"event":              map[string]string{"type": "ContentEvent", "message": m.Text, "contentType": "text/plain"},
		"conversationId":     m.Conversation, "dialogId": m.Conversation,
		"messageAudience": or(m.Audience, "ALL"),
	}
	b, _ := json.Marshal(map[string]any{"kind": "notification", "body": map[string]any{"changes": []any{change}}, "type": "ms.MessagingEventNotification"})
	return b
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
