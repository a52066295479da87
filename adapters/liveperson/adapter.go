// Package liveperson is the LivePerson Conversational Cloud platform
// adapter (messaging only): LivePerson steps consumers up by itself, and
// the bridge enriches it (DESIGN §4 flow B).
//
//   - Webhooks (the app install's five event types) are checked against the
//     brand's account and app install and their HMAC signature on the raw
//     bytes, then mapped to bridge events. An open conversation whose
//     CONSUMER participant is no longer the one the bridge recorded is an
//     identity swap: the new consumer's profile (agent messaging API) gives
//     the customer id the bridge itself put in the login token.
//   - The authentication connector (code flow): LivePerson posts the
//     consumer's code to /token/{brand}; the bridge redeems it at the
//     brand's OIDC IdP and answers with an RS256 id_token whose keys are at
//     /jwks/{brand}. The service records the login before the answer.
//   - Deliver posts the agent-only note (messageAudience
//     AGENTS_AND_MANAGERS), posts messages to the consumer (the login link
//     of bridge-driven step-up) and transfers the skill (removing the
//     assigned agent), as the bridge's own LivePerson user over the agent
//     messaging websocket. A message for the consumer goes out on the agent
//     side on every channel: on a channel the brand connects through the
//     Connector API, LivePerson's Webhooks hand it to the brand's
//     connector, which delivers it; the Connector API's SEND cannot,
//     because it publishes *as* the consumer.
//   - With connector_api, a bridge-driven step-up is attached to the
//     Connector API consumer by a SEND userprofile.SetUserProfile on its
//     behalf (Sentinel AppJWT, IdP ConsumerJWS).
//   - With ccs, attach_identity also writes the step-up (subject, IdP, amr,
//     acr, time; no personal data) to the Conversation Context Service v2
//     as a document of the conversation in the brand's namespace.
package liveperson

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/stepup-bridge/stepup-bridge/adapters/outbound"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// Type is the platform type name in the configuration.
const Type = "liveperson"

// DefaultCallTimeout bounds one Deliver.
const DefaultCallTimeout = 30 * time.Second

// DefaultCSDSURL is LivePerson's domain API (reference liveperson.md §3.1).
const DefaultCSDSURL = "https://api.liveperson.net"

var (
	_ bridge.Platform    = (*Adapter)(nil)
	_ bridge.BrandBound  = (*Adapter)(nil)
	_ bridge.TokenIssuer = (*Adapter)(nil)
)

// Options are the adapter's collaborators.
type Options struct {
	// Client makes the REST calls (domain API, agent login). nil builds one
	// with outbound.NewClient(Outbound).
	Client   *retryablehttp.Client
	Outbound outbound.Options
	// TLSConfig for the messaging websocket (tests trust their own CA); nil:
	// the system roots.
	TLSConfig *tls.Config
	Logger    *slog.Logger
	Clock     bridge.Clock
	// CallTimeout bounds one Deliver. Default DefaultCallTimeout.
	CallTimeout time.Duration
}

// Adapter is the LivePerson platform of one brand; safe for concurrent use.
type Adapter struct {
	cfg         config.LivePersonPlatform
	secret      []byte
	macs        macs // secret's pooled HMACs
	agent       *AgentClient
	connector   *ConnectorClient // nil: connector_api is not enabled
	extField    string           // ctmrinfo field holding the ext_consumer_id
	token       *tokenIssuer     // nil: the connector is not enabled
	ccs         *CCSClient       // nil: ccs is not enabled
	log         *slog.Logger
	clock       bridge.Clock
	callTimeout time.Duration

	assigned *assignments // from conversation notifications, for transfers

	mu       sync.RWMutex
	brand    string
	sessions bridge.SessionReader
}

// New checks the configuration and builds the adapter. Secret values never
// appear in its errors.
func New(cfg config.LivePersonPlatform, opts Options) (*Adapter, error) {
	a := &Adapter{cfg: cfg, secret: []byte(cfg.ClientSecret.Value), log: opts.Logger, clock: opts.Clock, callTimeout: opts.CallTimeout, assigned: newAssignments()}
	a.macs = newMACs(a.secret)
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.clock == nil {
		a.clock = bridge.SystemClock{}
	}
	if a.callTimeout <= 0 {
		a.callTimeout = DefaultCallTimeout
	}
	if a.cfg.ProfileTimeout <= 0 {
		a.cfg.ProfileTimeout = 1500 * time.Millisecond
	}
	if a.cfg.CSDSURL == "" {
		a.cfg.CSDSURL = DefaultCSDSURL
	}
	var errs []error
	if cfg.AccountID == "" || cfg.ClientID == "" || len(a.secret) == 0 {
		errs = append(errs, errors.New("account_id, client_id and client_secret are required"))
	}
	if cfg.Connector.Enabled {
		ks, err := newKeySet(cfg.Connector)
		switch {
		case err != nil:
			errs = append(errs, err)
		case cfg.Connector.ClientID == "" || !cfg.Connector.ClientSecret.IsSet() || cfg.Connector.Issuer == "":
			errs = append(errs, errors.New("connector: client_id, client_secret and issuer are required"))
		default:
			if cfg.Connector.TokenTTL <= 0 {
				cfg.Connector.TokenTTL = time.Hour
			}
			a.token = &tokenIssuer{cfg: cfg.Connector, secret: []byte(cfg.Connector.ClientSecret.Value), keys: ks, clock: a.clock}
			if cfg.Connector.DevGenerateKey {
				a.log.Warn("liveperson: connector signs with a generated development key; configure connector.signing_keys in production")
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("liveperson platform: %w", err)
	}
	client := opts.Client
	if client == nil {
		o := opts.Outbound
		if o.Logger == nil {
			o.Logger = opts.Logger
		}
		client = outbound.NewClient(o)
	}
	a.agent = NewAgentClient(cfg.AccountID, a.cfg.CSDSURL, cfg.Agent, client, opts.TLSConfig, a.clock)
	if !a.agent.configured() {
		a.log.Warn("liveperson: no agent user: step-ups are not detected and agents are not notified")
	}
	if ca := cfg.ConnectorAPI; ca.Enabled {
		field, ok := strings.CutPrefix(ca.ExtConsumerIDSDE, "ctmrinfo.")
		if !ok || field == "" || !a.agent.configured() {
			return nil, errors.New("liveperson platform: connector_api: needs ext_consumer_id_sde (ctmrinfo.<field>) and the agent user")
		}
		id, secret := ca.ClientID, ca.ClientSecret.Value
		if id == "" {
			id, secret = cfg.ClientID, cfg.ClientSecret.Value
		}
		if secret == "" {
			return nil, errors.New("liveperson platform: connector_api: client_secret is required with client_id")
		}
		a.connector = newConnectorClient(cfg.AccountID, id, secret, a.agent.domains, client, a.clock)
		a.extField = field
	}
	if cfg.CCS.Enabled {
		c, err := newCCSClient(cfg.AccountID, cfg.CCS, client, a.clock)
		if err != nil {
			return nil, fmt.Errorf("liveperson platform: %w", err)
		}
		a.ccs = c
	}
	return a, nil
}

// warmTimeout bounds the agent login made ahead of the first swap.
const warmTimeout = 10 * time.Second

// BindBrand implements bridge.BrandBound. It also logs the agent user in,
// in the background: the first swap's profile read then fits LivePerson's
// 2.5s answer budget, and wrong credentials show in the log at start-up.
func (a *Adapter) BindBrand(brand string, sessions bridge.SessionReader) {
	a.mu.Lock()
	a.brand, a.sessions = brand, sessions
	a.mu.Unlock()
	if a.agent.configured() {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), warmTimeout)
			defer cancel()
			if _, err := a.agent.session(ctx); err != nil {
				a.log.Warn("liveperson: agent login failed; retried on first use", "brand", brand, "error", err)
			}
		}()
	}
}

// ParseWebhook verifies the request on its raw body, then maps its changes
// to events. What the bridge does not use (receipts, typing, agent-only
// messages, other dialogs) gives no event, on purpose, and is logged at
// debug level; a conversation on another channel than messaging (live
// chat) gives an EventRefused, which the service counts.
// Errors wrap bridge.ErrUnauthenticated or bridge.ErrMalformed; a profile
// lookup that fails wraps bridge.ErrUnavailable, so that LivePerson retries.
func (a *Adapter) ParseWebhook(ctx context.Context, req bridge.WebhookRequest) ([]bridge.Event, error) {
	if err := verify(req.Header, req.Body, a.cfg.AccountID, a.cfg.ClientID, a.macs); err != nil {
		return nil, fmt.Errorf("liveperson webhook: %w", err)
	}
	items, skips, err := parse(req.Body)
	if err != nil {
		return nil, fmt.Errorf("liveperson webhook: %w", err)
	}
	for _, s := range skips {
		a.log.DebugContext(ctx, "liveperson: change ignored", "conversation", s.conv, "reason", s.reason)
	}
	events := make([]bridge.Event, 0, len(items))
	for _, it := range items {
		ev := it.ev
		switch {
		case it.participants && ev.Kind == bridge.EventConversationClosed:
			a.assigned.forget(ev.Conversation)
		case it.participants:
			a.assigned.observe(ev.Conversation, it.assigned, it.ts, a.clock.Now())
		}
		if it.open {
			if ev, err = a.resolveSwap(ctx, ev); err != nil {
				return nil, err
			}
		}
		events = append(events, ev)
	}
	return events, nil
}

// resolveSwap turns an open-conversation change into an identity swap when
// its CONSUMER is not the one the bridge recorded for the conversation.
// LivePerson resends the whole conversation on every change, so only this
// comparison tells a step-up from an agent joining. Reading the session
// outside the store's atomic step-up is safe: the recorded consumer never
// changes, and the step-up itself is once-only in the store.
func (a *Adapter) resolveSwap(ctx context.Context, ev bridge.Event) (bridge.Event, error) {
	a.mu.RLock()
	brand, sessions := a.brand, a.sessions
	a.mu.RUnlock()
	if sessions == nil || !a.agent.configured() {
		return ev, nil
	}
	sess, err := sessions.Get(ctx, bridge.Key{Brand: brand, Conversation: ev.Conversation})
	switch {
	case errors.Is(err, bridge.ErrNotFound):
		return ev, nil // first sight: the consumer it is seen with is the anonymous one
	case err != nil:
		return ev, fmt.Errorf("liveperson webhook: read session: %w", err)
	}
	if sess.Consumer == "" || sess.Consumer == ev.Consumer {
		return ev, nil
	}
	log := a.log.With("conversation", ev.Conversation, "event", ev.ID)
	switch sess.State {
	case bridge.StateSteppedUp:
		if sess.AuthConsumer == "" || ev.Consumer == sess.AuthConsumer {
			return ev, nil // the swap already counted; later changes carry the new consumer
		}
		// Yet another consumer on a stepped-up conversation: read who it
		// is; the service never rebinds, but warns the agents.
		log.Warn("liveperson: consumer changed again on a stepped-up conversation")
	case bridge.StateClosed:
		log.Warn("liveperson: consumer changed on a closed conversation; not a step-up")
		return ev, nil
	}
	pctx, cancel := context.WithTimeout(ctx, a.cfg.ProfileTimeout)
	defer cancel()
	sub, err := a.agent.CustomerID(pctx, ev.Consumer)
	if err != nil {
		return ev, fmt.Errorf("liveperson webhook: %w: read the new consumer's profile: %w", bridge.ErrUnavailable, err)
	}
	if sub == "" {
		log.Info("liveperson: consumer changed without an authenticated customer id; not a step-up")
		return ev, nil
	}
	ev.Kind = bridge.EventIdentitySwap
	ev.Subject = sub
	return ev, nil
}

// Deliver makes one outbox call through the agent messaging API. The
// identity needs no call in native step-up (LivePerson attached it when it
// stepped the consumer up); with connector_api it is set on the Connector
// API consumer's profile; with ccs a Conversation Context Service document
// records the step-up as well (after the profile, so that a retry after a
// CCS failure finds the profile already set and only writes CCS again).
func (a *Adapter) Deliver(ctx context.Context, e bridge.OutboxEntry) error {
	ctx, cancel := context.WithTimeout(ctx, a.callTimeout)
	defer cancel()
	conv := e.Key.Conversation
	var err error
	switch e.Effect {
	case bridge.EffectAttachIdentity:
		if a.connector != nil {
			err = a.attachViaConnector(ctx, e)
		}
		if err == nil && a.ccs != nil {
			err = a.ccs.WriteStepUp(ctx, conv, e.Identity)
		}
	case bridge.EffectNotifyAgents:
		err = a.requireText(e, func() error { return a.agent.Publish(ctx, conv, e.Text, e.ID, true) })
	case bridge.EffectPostMessage:
		if !a.agent.configured() {
			// Not through the Connector API either: its SEND publishes
			// as the consumer, so the text would reach the agents as the
			// consumer's own words and never the consumer.
			return bridge.Permanent(fmt.Errorf("liveperson: deliver %s %s: %w: a message for the consumer is posted on the agent side (on a Connector API channel LivePerson's Webhooks hand it to the brand's connector); the Connector API's SEND cannot carry it, it speaks as the consumer", e.Effect, e.ID, ErrNoAgent))
		}
		err = a.requireText(e, func() error { return a.agent.Publish(ctx, conv, e.Text, e.ID, false) })
	case bridge.EffectRouteSkill:
		err = a.requireText(e, func() error { return a.agent.TransferSkill(ctx, conv, e.Text, a.assigned.get(conv)) })
	default:
		err = bridge.Permanent(fmt.Errorf("unsupported effect %q", e.Effect))
	}
	if err != nil {
		return fmt.Errorf("liveperson: deliver %s %s: %w", e.Effect, e.ID, err)
	}
	return nil
}

// attachViaConnector sends the verified identity's SDEs as the consumer's
// authenticated profile (SEND userprofile.SetUserProfile). The consumer's
// ext_consumer_id comes from its profile, where the brand's connector put
// it; the ConsumerJWS LivePerson issues for it must name the conversation's
// consumer. Whether LivePerson then shows the consumer as authenticated,
// or only shows the SDEs, is undocumented (liveperson.md §6).
func (a *Adapter) attachViaConnector(ctx context.Context, e bridge.OutboxEntry) error {
	if e.Identity == nil || e.Consumer == "" {
		return bridge.Permanent(errors.New("entry without identity or consumer"))
	}
	info, err := a.agent.ProfileCustomerInfo(ctx, e.Consumer)
	if err != nil {
		return err
	}
	if sub, _ := infoString(info, "customerId"); sub == e.Identity.Subject {
		// Already on the profile: LivePerson's own step-up (a native
		// swap's new consumer) or an earlier attempt whose answer was lost.
		return nil
	}
	ext, err := infoString(info, a.extField)
	if err != nil {
		return bridge.Permanent(err)
	}
	if ext == "" {
		return bridge.Permanent(fmt.Errorf("the consumer's profile has no ctmrinfo.%s: the conversation was not opened by the brand's connector with its ext_consumer_id there, and LivePerson gives it to the bridge no other way", a.extField))
	}
	// The connector's own ctmrinfo fields are kept: whether SetUserProfile
	// replaces or merges the SDEs is undocumented.
	sdes := lpSDEs(e.Identity, a.cfg.ConnectorAPI.SDEs, info)
	return a.connector.SetUserProfile(ctx, ext, e.Consumer, sdes)
}

func (a *Adapter) requireText(e bridge.OutboxEntry, call func() error) error {
	if e.Key.Conversation == "" || e.Text == "" {
		return bridge.Permanent(errors.New("entry without conversation or text"))
	}
	return call()
}

// IssueToken implements bridge.TokenIssuer.
func (a *Adapter) IssueToken(ctx context.Context, r *http.Request, idp bridge.CodeRedeemer) bridge.TokenResult {
	if a.token == nil {
		return tokenError(http.StatusNotFound, ErrCodeInvalidRequest, "connector not enabled")
	}
	return a.token.IssueToken(ctx, r, idp)
}

// JWKS implements bridge.TokenIssuer: nil while the connector is off.
func (a *Adapter) JWKS() []byte {
	if a.token == nil {
		return nil
	}
	return a.token.JWKS()
}
