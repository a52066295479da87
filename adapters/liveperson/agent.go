package liveperson

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/net/websocket"

	"github.com/stepup-bridge/stepup-bridge/adapters/outbound"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// LivePerson service names in the domain API (CSDS), case-sensitive.
const (
	ServiceAgentVep  = "agentVep"
	ServiceFacadeMsg = "facadeMsg"
)

// Agent messaging request types (node-agent-sdk lib/Const.js).
const (
	ReqGetUserProfile          = ".ams.userprofile.GetUserProfile"
	ReqPublishEvent            = ".ams.ms.PublishEvent"
	ReqUpdateConversationField = ".ams.cm.UpdateConversationField"
)

// Timings of the agent session and the domain cache.
const (
	// domainsTTL: the domain API answers must not be hard-coded, but they
	// change rarely (node-agent-sdk caches for a minute; we refresh more
	// rarely and keep the old answer when a refresh fails).
	domainsTTL = 10 * time.Minute
	// sessionRefresh: node-agent-sdk refreshes the login session every 10
	// minutes; a session not refreshed in time is replaced by a new login.
	sessionRefresh = 10 * time.Minute
	maxAPIBody     = 1 << 20
	wsAPIVersion   = "2.1"
)

// ErrNoAgent is returned (marked permanent) when a call needs the agent
// user and none is configured.
var ErrNoAgent = errors.New("liveperson: no agent user configured (platforms[].agent)")

// AgentClient is the bridge's LivePerson user: the domain API for the
// service hosts, the agent login (with its session kept fresh), and one
// messaging websocket per call. A connection per call is slower than a
// kept-open socket but needs no reconnect logic: calls are rare (a profile
// read per step-up, a few notes per step-up).
type AgentClient struct {
	account string
	domains *domainCache
	creds   config.LivePersonAgent
	http    *retryablehttp.Client
	tls     *tls.Config
	clock   bridge.Clock

	loginMu sync.Mutex // one login or refresh at a time
	mu      sync.Mutex
	sess    *agentSession
}

// domainCache is the domain API (CSDS) answer of one account, shared by the
// agent and Connector API clients so that the account's services are read
// once per domainsTTL whichever client asks.
type domainCache struct {
	account string
	csds    string
	http    *retryablehttp.Client
	clock   bridge.Clock

	mu      sync.Mutex
	domains map[string]string
	at      time.Time
}

type agentSession struct {
	bearer    string
	csrf      string
	userID    string // "{account}.{userId}", the id ParticipantsChange names
	cookies   []*http.Cookie
	refreshed time.Time
}

// NewAgentClient builds the client; nothing is called until needed.
func NewAgentClient(account, csdsURL string, creds config.LivePersonAgent, client *retryablehttp.Client, tlsConfig *tls.Config, clock bridge.Clock) *AgentClient {
	dc := &domainCache{account: account, csds: strings.TrimRight(csdsURL, "/"), http: client, clock: clock}
	return &AgentClient{account: account, domains: dc, creds: creds, http: client, tls: tlsConfig, clock: clock}
}

func (c *AgentClient) configured() bool { return c != nil && c.creds.Username != "" }

// domain returns a service's host from the cached domain API answer.
func (c *AgentClient) domain(ctx context.Context, service string) (string, error) {
	return c.domains.host(ctx, service)
}

// host returns a service's host from the cached domain API answer.
func (c *domainCache) host(ctx context.Context, service string) (string, error) {
	c.mu.Lock()
	d, at := c.domains, c.at
	c.mu.Unlock()
	now := c.clock.Now()
	if d == nil || now.Sub(at) > domainsTTL {
		fresh, err := c.fetch(ctx)
		switch {
		case err == nil:
			c.mu.Lock()
			c.domains, c.at = fresh, now
			c.mu.Unlock()
			d = fresh
		case d == nil:
			return "", err
		} // else: keep the stale answer while the domain API is down
	}
	host, ok := d[service]
	if !ok {
		return "", bridge.Permanent(fmt.Errorf("liveperson: domain API lists no %s for the account", service))
	}
	return host, nil
}

func (c *domainCache) fetch(ctx context.Context) (map[string]string, error) {
	u := c.csds + "/api/account/" + url.PathEscape(c.account) + "/service/baseURI.json?version=1.0"
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, bridge.Permanent(fmt.Errorf("liveperson: domain API: %w", err))
	}
	req.Header.Set("Accept", "application/json")
	var doc struct {
		BaseURIs []struct {
			Service string `json:"service"`
			BaseURI string `json:"baseURI"`
		} `json:"baseURIs"`
	}
	if err := doJSON(c.http, req, &doc); err != nil {
		return nil, fmt.Errorf("liveperson: domain API: %w", err)
	}
	m := map[string]string{}
	for _, b := range doc.BaseURIs {
		// A host, never a URL: it becomes https://{host}/... and wss://{host}/...
		if b.Service != "" && b.BaseURI != "" && !strings.ContainsAny(b.BaseURI, "/?#@ ") {
			m[b.Service] = b.BaseURI
		}
	}
	return m, nil
}

func doJSON(client *retryablehttp.Client, req *retryablehttp.Request, v any) error {
	resp, err := outbound.Do(client, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return errors.New("response is not the documented JSON")
		}
	}
	return nil
}

// session returns a logged-in session, refreshing it when due and logging
// in again when the refresh fails.
func (c *AgentClient) session(ctx context.Context) (*agentSession, error) {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	now := c.clock.Now()
	if s != nil && now.Sub(s.refreshed) < sessionRefresh {
		return s, nil
	}
	// Concurrent callers wait for one login instead of each making one.
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	c.mu.Lock()
	s = c.sess
	c.mu.Unlock()
	if s != nil && now.Sub(s.refreshed) < sessionRefresh {
		return s, nil
	}
	host, err := c.domain(ctx, ServiceAgentVep)
	if err != nil {
		return nil, err
	}
	if s != nil && s.csrf != "" {
		if err := c.refresh(ctx, host, s); err == nil {
			fresh := *s
			fresh.refreshed = now
			c.mu.Lock()
			c.sess = &fresh
			c.mu.Unlock()
			return &fresh, nil
		}
	}
	s, err = c.login(ctx, host)
	if err != nil {
		return nil, err
	}
	s.refreshed = now
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
	return s, nil
}

// dropSession forgets a session the messaging service refused.
func (c *AgentClient) dropSession(s *agentSession) {
	c.mu.Lock()
	if c.sess == s {
		c.sess = nil
	}
	c.mu.Unlock()
}

type loginRequest struct {
	Username          string `json:"username"`
	Password          string `json:"password,omitempty"`
	AppKey            string `json:"appKey,omitempty"`
	Secret            string `json:"secret,omitempty"`
	AccessToken       string `json:"accessToken,omitempty"`
	AccessTokenSecret string `json:"accessTokenSecret,omitempty"`
}

func (c *AgentClient) login(ctx context.Context, host string) (*agentSession, error) {
	body := loginRequest{Username: c.creds.Username}
	if c.creds.Password.IsSet() {
		body.Password = c.creds.Password.Value
	} else {
		body.AppKey, body.Secret = c.creds.AppKey, c.creds.Secret.Value
		body.AccessToken, body.AccessTokenSecret = c.creds.AccessToken, c.creds.AccessTokenSecret.Value
	}
	raw, _ := json.Marshal(body)
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, "https://"+host+"/api/account/"+url.PathEscape(c.account)+"/login?v=1.3", raw)
	if err != nil {
		return nil, bridge.Permanent(fmt.Errorf("liveperson: agent login: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := outbound.Do(c.http, req)
	if err != nil {
		return nil, fmt.Errorf("liveperson: agent login: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		Bearer string `json:"bearer"`
		CSRF   string `json:"csrf"`
		Config struct {
			UserID json.RawMessage `json:"userId"`
		} `json:"config"`
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody))
	if err != nil || json.Unmarshal(data, &out) != nil || out.Bearer == "" {
		return nil, errors.New("liveperson: agent login: response without bearer")
	}
	uid := strings.Trim(string(out.Config.UserID), `"`)
	return &agentSession{bearer: out.Bearer, csrf: out.CSRF, userID: c.account + "." + uid, cookies: resp.Cookies()}, nil
}

func (c *AgentClient) refresh(ctx context.Context, host string, s *agentSession) error {
	raw, _ := json.Marshal(map[string]string{"csrf": s.csrf})
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, "https://"+host+"/api/account/"+url.PathEscape(c.account)+"/refresh?v=1.3", raw)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for _, ck := range s.cookies {
		req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	}
	return doJSON(c.http, req, nil)
}

// wsRequest is one messaging API request (node-agent-sdk AgentSDK.request).
type wsRequest struct {
	Kind     string `json:"kind"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Body     any    `json:"body"`
	Metadata any    `json:"metadata,omitempty"`
}

type wsResponse struct {
	Kind  string          `json:"kind"`
	ReqID string          `json:"reqId"`
	Code  json.RawMessage `json:"code"`
	Body  json.RawMessage `json:"body"`
}

// wsError is a messaging API answer with an error code.
type wsError struct {
	Type string
	Code int
}

func (e *wsError) Error() string {
	return fmt.Sprintf("liveperson: %s answered code %d", e.Type, e.Code)
}

// conn is one messaging websocket; calls on it are sequential.
type conn struct {
	ws   *websocket.Conn
	next int
}

// withConn opens the messaging websocket for fn. A handshake the service
// refuses (an expired session) is retried once with a new login.
func (c *AgentClient) withConn(ctx context.Context, fn func(*conn, *agentSession) error) error {
	if !c.configured() {
		return bridge.Permanent(ErrNoAgent)
	}
	host, err := c.domain(ctx, ServiceFacadeMsg)
	if err != nil {
		return err
	}
	var (
		ws *websocket.Conn
		s  *agentSession
	)
	for attempt := 0; ; attempt++ {
		s, err = c.session(ctx)
		if err != nil {
			return err
		}
		ws, err = c.dial(ctx, host, s.bearer)
		if err == nil {
			break
		}
		c.dropSession(s)
		if attempt > 0 || ctx.Err() != nil {
			return err
		}
	}
	defer ws.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.SetDeadline(dl)
	}
	err = fn(&conn{ws: ws}, s)
	var we *wsError
	if errors.Is(err, errConnLost) || errors.As(err, &we) && (we.Code == 401 || we.Code == 403) {
		// The session may have ended under us (LivePerson closes the socket
		// with 4401/4407): the next call logs in afresh.
		c.dropSession(s)
	}
	return err
}

// errConnLost: the websocket failed mid-call.
var errConnLost = errors.New("connection lost or timed out")

func (c *AgentClient) dial(ctx context.Context, host, bearer string) (*websocket.Conn, error) {
	// The bearer is part of the URL (as LivePerson defines it): never log
	// this URL, and never pass the library's error on, which quotes it.
	loc := "wss://" + host + "/ws_api/account/" + url.PathEscape(c.account) + "/messaging/brand/" + url.PathEscape(bearer) + "?v=" + wsAPIVersion
	cfg, err := websocket.NewConfig(loc, "https://"+host)
	if err != nil {
		return nil, bridge.Permanent(errors.New("liveperson: messaging websocket: bad host"))
	}
	cfg.TlsConfig = c.tls
	cfg.Dialer = &net.Dialer{Timeout: 5 * time.Second}
	ws, err := cfg.DialContext(ctx)
	if err != nil {
		cause := "handshake refused"
		var de *websocket.DialError
		if errors.As(err, &de) && de.Err != nil && !errors.Is(de.Err, websocket.ErrBadStatus) {
			cause = "connect failed"
		}
		return nil, fmt.Errorf("liveperson: messaging websocket on %s: %s", host, cause)
	}
	return ws, nil
}

// call sends one request and waits for its response, skipping
// notifications. Error codes of 400 and above fail: 401, 403, 429 and 5xx
// may pass with time, other 4xx will not (marked permanent).
func (k *conn) call(typ string, body, metadata any) (json.RawMessage, error) {
	k.next++
	id := strconv.Itoa(k.next)
	if err := websocket.JSON.Send(k.ws, wsRequest{Kind: "req", ID: id, Type: typ, Body: body, Metadata: metadata}); err != nil {
		return nil, fmt.Errorf("liveperson: %s: send: %w", typ, errConnLost)
	}
	for {
		var raw []byte
		if err := websocket.Message.Receive(k.ws, &raw); err != nil {
			return nil, fmt.Errorf("liveperson: %s: no response: %w", typ, errConnLost)
		}
		var r wsResponse
		if json.Unmarshal(raw, &r) != nil || r.Kind != "resp" || r.ReqID != id {
			continue // a notification or another answer
		}
		if code, ok := numericCode(r.Code); ok && code >= 400 {
			e := &wsError{Type: typ, Code: code}
			if code == 401 || code == 403 || code == 429 || code >= 500 {
				return nil, e
			}
			return nil, bridge.Permanent(e)
		}
		return r.Body, nil
	}
}

func numericCode(raw json.RawMessage) (int, bool) {
	s := strings.Trim(string(bytes.TrimSpace(raw)), `"`)
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// CustomerID reads the consumer's profile and returns the customer id in
// its authenticated SDEs: the subject the bridge put in ctmrinfo.customerId
// when it minted the consumer's login token. "" when the profile has none.
func (c *AgentClient) CustomerID(ctx context.Context, consumerID string) (string, error) {
	return c.ProfileInfo(ctx, consumerID, "customerId")
}

// ProfileInfo reads the consumer's profile and returns a ctmrinfo field of
// its authenticated SDEs ("" when the profile has none).
func (c *AgentClient) ProfileInfo(ctx context.Context, consumerID, field string) (string, error) {
	info, err := c.ProfileCustomerInfo(ctx, consumerID)
	if err != nil {
		return "", err
	}
	return infoString(info, field)
}

// ProfileCustomerInfo reads the consumer's profile and returns the fields
// of its authenticated ctmrinfo SDEs (nil when there are none).
func (c *AgentClient) ProfileCustomerInfo(ctx context.Context, consumerID string) (map[string]json.RawMessage, error) {
	var info map[string]json.RawMessage
	err := c.withConn(ctx, func(k *conn, _ *agentSession) error {
		// The body is the consumer id itself (node-agent-sdk README:
		// agent.getUserProfile(consumerId, cb) sends it as the body).
		body, err := k.call(ReqGetUserProfile, consumerID, nil)
		if err != nil {
			return err
		}
		info, err = ctmrInfoFromProfile(body)
		return err
	})
	return info, err
}

type profileSDE struct {
	Type string                     `json:"type"`
	Auth json.RawMessage            `json:"auth"` // set on authenticated SDEs in the list form
	Info map[string]json.RawMessage `json:"info"`
}

// customerIDFromProfile reads the ctmrinfo customerId of a GetUserProfile
// answer: authenticatedData.lp_sdes in the wire format, or the SDE list
// node-agent-sdk turns it into (its README shows that form). Only
// authenticated SDEs count: an unauthenticated page can set any ctmrinfo.
func customerIDFromProfile(body json.RawMessage) (string, error) {
	return infoFromProfile(body, "customerId")
}

// infoFromProfile reads a ctmrinfo field the same way.
func infoFromProfile(body json.RawMessage, field string) (string, error) {
	info, err := ctmrInfoFromProfile(body)
	if err != nil {
		return "", err
	}
	return infoString(info, field)
}

// ctmrInfoFromProfile merges the info of the profile's authenticated
// ctmrinfo SDEs (the first one listing a field wins).
func ctmrInfoFromProfile(body json.RawMessage) (map[string]json.RawMessage, error) {
	var sdes []profileSDE
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(body, &sdes); err != nil {
			return nil, errors.New("liveperson: user profile is not the documented JSON")
		}
		// "auth": null is no auth information: not authenticated.
		sdes = slices.DeleteFunc(sdes, func(s profileSDE) bool { return len(s.Auth) == 0 || string(s.Auth) == "null" })
	} else {
		var p struct {
			AuthenticatedData *struct {
				SDEs []profileSDE `json:"lp_sdes"`
			} `json:"authenticatedData"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, errors.New("liveperson: user profile is not the documented JSON")
		}
		if p.AuthenticatedData != nil {
			sdes = p.AuthenticatedData.SDEs
		}
	}
	var info map[string]json.RawMessage
	for _, s := range sdes {
		if s.Type != "ctmrinfo" {
			continue
		}
		for k, v := range s.Info {
			if _, seen := info[k]; !seen && len(v) > 0 && string(v) != "null" {
				if info == nil {
					info = map[string]json.RawMessage{}
				}
				info[k] = v
			}
		}
	}
	return info, nil
}

// infoString is a ctmrinfo field as text (a number as written).
func infoString(info map[string]json.RawMessage, field string) (string, error) {
	raw, ok := info[field]
	if !ok {
		return "", nil
	}
	var v string
	if json.Unmarshal(raw, &v) != nil {
		v = string(raw) // a number
	}
	if len(v) > maxIDBytes {
		return "", fmt.Errorf("liveperson: ctmrinfo %s too long", field)
	}
	return v, nil
}

// joinAsManager makes the bridge's user a participant, which publishing
// and transferring require. Already being one is not an error worth
// stopping for: the call that needs it reports the real problem.
func (k *conn) joinAsManager(conv, userID string) {
	_, _ = k.call(ReqUpdateConversationField, map[string]any{
		"conversationId": conv,
		"conversationField": []map[string]string{
			{"field": "ParticipantsChange", "type": "ADD", "role": RoleManager, "userId": userID},
		},
	}, nil)
}

// Publish posts text in the conversation; agentsOnly makes it a private
// message (messageAudience AGENTS_AND_MANAGERS) the consumer never sees.
// externalID (the outbox entry id) rides in the message metadata, so a
// retried delivery can be recognised.
func (c *AgentClient) Publish(ctx context.Context, conv, text, externalID string, agentsOnly bool) error {
	return c.withConn(ctx, func(k *conn, s *agentSession) error {
		k.joinAsManager(conv, s.userID)
		body := textEvent(conv, text)
		if agentsOnly {
			body["messageAudience"] = AudienceAgentsManagers
		}
		_, err := k.call(ReqPublishEvent, body, []map[string]string{{"type": "ExternalId", "id": externalID}})
		return err
	})
}

// textEvent is a PublishEvent body with a text ContentEvent, the same on
// the agent and consumer sides (connector-api.send.request-text.json).
func textEvent(conv, text string) map[string]any {
	return map[string]any{
		"dialogId": conv,
		"event":    map[string]string{"type": EventContent, "contentType": contentTypeText, "message": text},
	}
}

// TransferSkill moves the conversation to the skill. As LivePerson
// documents it, a transfer also removes the ASSIGNED_AGENT, in the same
// request, when one is assigned; otherwise the agent keeps the
// conversation. When the assignment is unknown the removal is tried first
// and, if LivePerson refuses the request (4xx), the transfer is sent
// without it on the same connection.
func (c *AgentClient) TransferSkill(ctx context.Context, conv, skill string, assigned Assignment) error {
	return c.withConn(ctx, func(k *conn, s *agentSession) error {
		k.joinAsManager(conv, s.userID)
		transfer := func(unassign bool) error {
			var fields []map[string]string
			if unassign {
				fields = append(fields, map[string]string{"field": "ParticipantsChange", "type": "REMOVE", "role": RoleAssignedAgent})
			}
			fields = append(fields, map[string]string{"field": "Skill", "type": "UPDATE", "skill": skill})
			_, err := k.call(ReqUpdateConversationField, map[string]any{"conversationId": conv, "conversationField": fields}, nil)
			return err
		}
		err := transfer(assigned != AssignmentNone)
		if err != nil && assigned == AssignmentUnknown && bridge.IsPermanent(err) {
			return transfer(false)
		}
		return err
	})
}
