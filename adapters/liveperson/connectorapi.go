package liveperson

import (
	"bytes"
	"context"
	"encoding/base64"
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
)

// Domain API service names of the Connector API (liveperson.md §3.2, §3.3).
const (
	ServiceSentinel          = "sentinel"
	ServiceIDP               = "idp"
	ServiceAsyncMessagingEnt = "asyncMessagingEnt"
)

// SendSetUserProfile is the SEND request type the bridge uses
// (connector-api.userprofile.SetUserProfile.schema-example.json). It does
// not SEND ms.PublishEvent: that publishes the consumer's own message.
const SendSetUserProfile = "userprofile.SetUserProfile"

// HeaderOnBehalf carries the ConsumerJWS on Send API calls.
const HeaderOnBehalf = "X-LP-ON-BEHALF"

const (
	// appTokenTTL is the AppJWT lifetime LivePerson documents, used when
	// the token's own exp cannot be read.
	appTokenTTL = time.Hour
	// appTokenMargin: a token is replaced this long before it expires, so
	// that no call carries one that runs out on the way.
	appTokenMargin = 5 * time.Minute
)

// ErrNotConsumersJWS: LivePerson's IdP answered a ConsumerJWS for another
// consumer than the conversation's. The bridge would speak for the wrong
// person; retrying cannot change it.
var ErrNotConsumersJWS = errors.New("liveperson: the ConsumerJWS names another consumer than the conversation's (ext_consumer_id or app install is not the brand connector's)")

// ConnectorClient calls the Connector API's Send API as the brand's
// connector does, on behalf of a consumer (liveperson.md §3.3): an AppJWT
// from Sentinel (client_credentials of the connector's app install, scope
// msg.consumer), cached and replaced before it expires; a ConsumerJWS from
// LivePerson's IdP for the consumer's ext_consumer_id; then SEND, one
// request per call. The Send API speaks *as the consumer*: what it
// publishes comes from the consumer and goes to the agents.
type ConnectorClient struct {
	account  string
	clientID string
	secret   string
	domains  *domainCache
	http     *retryablehttp.Client
	clock    bridge.Clock

	tokens tokenCache
}

type appToken struct {
	value     string
	refreshAt time.Time
}

func newConnectorClient(account, clientID, secret string, domains *domainCache, client *retryablehttp.Client, clock bridge.Clock) *ConnectorClient {
	return &ConnectorClient{account: account, clientID: clientID, secret: secret, domains: domains, http: client, clock: clock}
}

// appJWT returns a cached AppJWT, fetching one when there is none or it is
// due for replacement.
func (c *ConnectorClient) appJWT(ctx context.Context) (*appToken, error) {
	return c.tokens.get(ctx, c.clock.Now, c.fetchAppJWT)
}

// dropAppJWT forgets a token LivePerson refused (unless already replaced).
func (c *ConnectorClient) dropAppJWT(t *appToken) { c.tokens.drop(t) }

func (c *ConnectorClient) fetchAppJWT(ctx context.Context) (*appToken, error) {
	host, err := c.domains.host(ctx, ServiceSentinel)
	if err != nil {
		return nil, err
	}
	// As the Connector API documents it: v and grant_type in the query,
	// the client credentials in the form body (never in the URL, which
	// errors and logs may show).
	u := "https://" + host + "/sentinel/api/account/" + url.PathEscape(c.account) + "/app/token?v=1.0&grant_type=client_credentials"
	form := url.Values{"client_id": {c.clientID}, "client_secret": {c.secret}}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, u, []byte(form.Encode()))
	if err != nil {
		return nil, bridge.Permanent(fmt.Errorf("liveperson: app token: %w", err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	var out struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := doJSON(c.http, req, &out); err != nil {
		return nil, fmt.Errorf("liveperson: app token: %w", err)
	}
	if out.AccessToken == "" {
		return nil, errors.New("liveperson: app token: response without access_token")
	}
	now := c.clock.Now()
	expires := now.Add(appTokenTTL)
	// The token's exp is read, not verified: it came straight from
	// Sentinel over TLS, and only tells when to ask again. A token that
	// claims more than the documented hour is not trusted for longer.
	if exp, ok := jwtTime(out.AccessToken, "exp"); ok && exp.Before(expires) {
		expires = exp
	}
	refreshAt := expires.Add(-appTokenMargin)
	if life := expires.Sub(now); life <= 2*appTokenMargin {
		refreshAt = now.Add(life / 2) // a short-lived token: use half of it
	}
	return &appToken{value: out.AccessToken, refreshAt: refreshAt}, nil
}

// jwtClaims decodes a compact JWS payload without verifying it.
func jwtClaims(token string) (map[string]json.RawMessage, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var claims map[string]json.RawMessage
	if json.Unmarshal(raw, &claims) != nil {
		return nil, false
	}
	return claims, true
}

func jwtTime(token, claim string) (time.Time, bool) {
	claims, ok := jwtClaims(token)
	if !ok {
		return time.Time{}, false
	}
	var n json.Number
	if json.Unmarshal(claims[claim], &n) != nil {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f <= 0 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// consumerJWS asks LivePerson's IdP for the consumer's ConsumerJWS.
func (c *ConnectorClient) consumerJWS(ctx context.Context, tok *appToken, extConsumerID string) (string, error) {
	host, err := c.domains.host(ctx, ServiceIDP)
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(map[string]string{"ext_consumer_id": extConsumerID})
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, "https://"+host+"/api/account/"+url.PathEscape(c.account)+"/consumer?v=1.0", body)
	if err != nil {
		return "", bridge.Permanent(fmt.Errorf("liveperson: consumer JWS: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", tok.value) // bare, as documented
	var out struct {
		Token string `json:"token"`
	}
	if err := doJSON(c.http, req, &out); err != nil {
		return "", fmt.Errorf("liveperson: consumer JWS: %w", err)
	}
	if out.Token == "" {
		return "", errors.New("liveperson: consumer JWS: response without token")
	}
	return out.Token, nil
}

// sendRequest is one SEND body (connector-api.send.request-*.json).
type sendRequest struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
	Type string `json:"type"`
	Body any    `json:"body"`
}

// Send makes one SEND call on behalf of the consumer whose ext_consumer_id
// is given. lpConsumer, when set, must be the consumer the ConsumerJWS
// names (its lp_consumer_id): the check that keeps the bridge from
// speaking for someone else. A 401 (the AppJWT expired or was revoked
// early) fetches a new AppJWT and tries once more.
func (c *ConnectorClient) Send(ctx context.Context, extConsumerID, lpConsumer, typ string, body any) error {
	raw, err := json.Marshal(sendRequest{Kind: "req", ID: "1", Type: typ, Body: body})
	if err != nil {
		return bridge.Permanent(fmt.Errorf("liveperson: SEND %s: %w", typ, err))
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.appJWT(ctx)
		if err != nil {
			return err
		}
		err = c.sendWith(ctx, tok, extConsumerID, lpConsumer, typ, raw)
		if attempt == 0 && unauthorized(err) {
			c.dropAppJWT(tok)
			continue
		}
		return err
	}
}

func unauthorized(err error) bool {
	var e *outbound.Error
	return errors.As(err, &e) && e.Status == http.StatusUnauthorized
}

func (c *ConnectorClient) sendWith(ctx context.Context, tok *appToken, extConsumerID, lpConsumer, typ string, raw []byte) error {
	jws, err := c.consumerJWS(ctx, tok, extConsumerID)
	if err != nil {
		return err
	}
	if lpConsumer != "" {
		claims, _ := jwtClaims(jws)
		var got string
		if json.Unmarshal(claims["lp_consumer_id"], &got) != nil || got != lpConsumer {
			return bridge.Permanent(ErrNotConsumersJWS)
		}
	}
	host, err := c.domains.host(ctx, ServiceAsyncMessagingEnt)
	if err != nil {
		return err
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, "https://"+host+"/api/account/"+url.PathEscape(c.account)+"/messaging/consumer/conversation/send?v=3", raw)
	if err != nil {
		return bridge.Permanent(fmt.Errorf("liveperson: SEND %s: %w", typ, err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", tok.value)
	req.Header.Set(HeaderOnBehalf, jws)
	resp, err := outbound.Do(c.http, req)
	if err != nil {
		return fmt.Errorf("liveperson: SEND %s: %w", typ, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody))
	if err != nil {
		return fmt.Errorf("liveperson: SEND %s: read response: %w", typ, err)
	}
	// connector-api.send.response.json: {"reqId","code":"OK","body"}. A
	// 200 whose code is an error number is an error all the same.
	var out struct {
		Code json.RawMessage `json:"code"`
	}
	if json.Unmarshal(data, &out) != nil {
		return fmt.Errorf("liveperson: SEND %s: response is not the documented JSON", typ)
	}
	code := string(bytes.Trim(bytes.TrimSpace(out.Code), `"`))
	if n, ok := numericCode(out.Code); ok && n >= 400 {
		e := fmt.Errorf("liveperson: SEND %s answered code %d", typ, n)
		if n == 429 || n >= 500 {
			return e
		}
		return bridge.Permanent(e)
	} else if !ok && code != "OK" && code != "" {
		return bridge.Permanent(fmt.Errorf("liveperson: SEND %s answered code %q", typ, safe(code)))
	}
	return nil
}

// SetUserProfile sets the consumer's authenticated SDEs
// (connector-api.userprofile.SetUserProfile.schema-example.json).
func (c *ConnectorClient) SetUserProfile(ctx context.Context, extConsumerID, lpConsumer string, sdes []any) error {
	return c.Send(ctx, extConsumerID, lpConsumer, SendSetUserProfile, map[string]any{
		"authenticatedData": map[string]any{"lp_sdes": sdes},
	})
}
