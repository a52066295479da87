package liveperson

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/stepup-bridge/stepup-bridge/adapters/outbound"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// CCS v2 paths (liveperson.md §3.7).
const (
	CCSLoginPath  = "/v2/authenticate/login"
	CCSCreatePath = "/v2/context/document/create"
)

const (
	// ccsTokenTTL: the token's lifetime when its exp cannot be read.
	// LivePerson documents 24 hours for the page's test token; an hour is
	// the safe side.
	ccsTokenTTL = time.Hour
	// ccsTokenMargin: replaced this long before it expires.
	ccsTokenMargin = 5 * time.Minute
)

// CCSClient writes documents to the Conversation Context Service v2 with a
// token from Conversation Orchestrator's login (Basic username:password),
// cached until shortly before its exp and fetched again once when CCS
// answers 401.
type CCSClient struct {
	account   string
	authURL   string
	url       string
	user      string
	password  string
	namespace string
	ttl       time.Duration
	http      *retryablehttp.Client
	clock     bridge.Clock

	tokens tokenCache
}

func newCCSClient(account string, cfg config.LivePersonCCS, client *retryablehttp.Client, clock bridge.Clock) (*CCSClient, error) {
	c := &CCSClient{account: account, authURL: strings.TrimRight(cfg.AuthURL, "/"), url: strings.TrimRight(cfg.URL, "/"),
		user: cfg.Username.Value, password: cfg.Password.Value, namespace: cfg.Namespace, ttl: cfg.TTL, http: client, clock: clock}
	switch {
	case cfg.AuthURL != "" || cfg.URL != "":
		if c.authURL == "" || c.url == "" {
			return nil, errors.New("ccs: auth_url and url go together")
		}
	case cfg.Zone == "z1" || cfg.Zone == "z2" || cfg.Zone == "z3":
		c.authURL = "https://" + cfg.Zone + ".context.liveperson.net"
		c.url = "https://" + cfg.Zone + ".ccs.liveperson.net"
	default:
		return nil, errors.New("ccs: zone must be z1, z2 or z3")
	}
	if c.user == "" || c.password == "" || c.namespace == "" {
		return nil, errors.New("ccs: username, password and namespace are required")
	}
	if c.ttl <= 0 {
		c.ttl = config.LivePersonCCSDefaultTTL
	}
	c.ttl = min(c.ttl, config.LivePersonCCSMaxTTL)
	return c, nil
}

// ccsPayload is what the bridge writes: that the conversation was stepped
// up, and by whom and how. Personal data (name, email, phone) stays out of
// CCS: whatever reads the namespace (bots, routing) gets the subject only.
type ccsPayload struct {
	SteppedUp  bool   `json:"stepped_up"`
	Subject    string `json:"subject"`
	Provider   string `json:"provider"`
	AMR        string `json:"amr"`
	ACR        string `json:"acr"`
	VerifiedAt string `json:"verified_at"`
}

type ccsDocument struct {
	AccountID  string     `json:"accountId"`
	NameSpace  string     `json:"nameSpace"`
	SessionID  string     `json:"sessionId"`
	TTLSeconds int64      `json:"ttlSeconds"`
	Payload    ccsPayload `json:"payload"`
}

// WriteStepUp creates the conversation's document in the namespace
// (ccs.v2.save-properties.request.json). CCS takes no idempotency key, so
// the outbox entry id is not sent: the create writes the same content
// each time, and a retried delivery (whose first answer was lost) only
// writes it again, harmlessly.
func (c *CCSClient) WriteStepUp(ctx context.Context, conv string, id *bridge.Identity) error {
	if conv == "" || id == nil || id.Subject == "" {
		return bridge.Permanent(errors.New("liveperson: ccs: entry without conversation or identity"))
	}
	verified := id.VerifiedAt
	if verified.IsZero() {
		verified = c.clock.Now()
	}
	doc := ccsDocument{AccountID: c.account, NameSpace: c.namespace, SessionID: conv, TTLSeconds: int64(c.ttl / time.Second),
		Payload: ccsPayload{SteppedUp: true, Subject: id.Subject, Provider: id.Provider, AMR: strings.Join(id.AMR, " "), ACR: id.ACR,
			VerifiedAt: verified.UTC().Format(time.RFC3339)}}
	raw, err := json.Marshal(doc)
	if err != nil {
		return bridge.Permanent(fmt.Errorf("liveperson: ccs: %w", err))
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.token(ctx)
		if err != nil {
			return err
		}
		err = c.create(ctx, tok, raw)
		if attempt == 0 && unauthorized(err) {
			c.dropToken(tok)
			continue
		}
		return err
	}
}

func (c *CCSClient) create(ctx context.Context, tok *appToken, raw []byte) error {
	// The token goes in the query, as CCS documents it; outbound errors
	// redact query values, so it never reaches a log.
	u := c.url + CCSCreatePath + "?access_token=" + url.QueryEscape(tok.value)
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, u, raw)
	if err != nil {
		return bridge.Permanent(errors.New("liveperson: ccs: bad url"))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := outbound.Do(c.http, req)
	if err != nil {
		return fmt.Errorf("liveperson: ccs: create document: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAPIBody))
	return nil
}

// token returns the cached token, logging in when there is none or it is
// due for replacement.
func (c *CCSClient) token(ctx context.Context) (*appToken, error) {
	return c.tokens.get(ctx, c.clock.Now, c.login)
}

func (c *CCSClient) dropToken(t *appToken) { c.tokens.drop(t) }

func (c *CCSClient) login(ctx context.Context) (*appToken, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, c.authURL+CCSLoginPath, nil)
	if err != nil {
		return nil, bridge.Permanent(errors.New("liveperson: ccs: bad auth_url"))
	}
	req.SetBasicAuth(c.user, c.password)
	req.Header.Set("Accept", "application/json")
	resp, err := outbound.Do(c.http, req)
	if err != nil {
		return nil, fmt.Errorf("liveperson: ccs: login: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody))
	if err != nil {
		return nil, fmt.Errorf("liveperson: ccs: login: read response: %w", err)
	}
	value := ccsTokenFrom(data)
	if value == "" {
		return nil, errors.New("liveperson: ccs: login: response without a token")
	}
	now := c.clock.Now()
	expires := now.Add(ccsTokenTTL)
	if exp, ok := jwtTime(value, "exp"); ok && exp.Before(expires) {
		expires = exp
	}
	refreshAt := expires.Add(-ccsTokenMargin)
	if life := expires.Sub(now); life <= 2*ccsTokenMargin {
		refreshAt = now.Add(life / 2)
	}
	return &appToken{value: value, refreshAt: refreshAt}, nil
}

// ccsTokenFrom reads the login answer. LivePerson documents only "200 ok
// with the OAuth2.0 secure token" (API Authorization page), not its shape:
// a JSON object with access_token (or token), a JSON string, or the bare
// token are all taken.
func ccsTokenFrom(data []byte) string {
	var obj struct {
		AccessToken string `json:"access_token"`
		AccessTok2  string `json:"accessToken"`
		Token       string `json:"token"`
	}
	var s string
	switch {
	case json.Unmarshal(data, &obj) == nil:
		s = cmp.Or(obj.AccessToken, obj.AccessTok2, obj.Token)
	case json.Unmarshal(data, &s) == nil:
	default:
		s = strings.TrimSpace(string(data))
	}
	if s == "" || len(s) > 16<<10 || strings.ContainsAny(s, " \t\r\n\"{}") {
		return ""
	}
	return s
}
