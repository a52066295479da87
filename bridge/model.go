// Package bridge is the domain of stepup-bridge: conversations (sessions),
// login links (tickets), logins, the step-up state machine, and the service
// that orchestrates them. It declares the ports it needs (Store, Platform,
// IdentityProvider, Clock) and knows nothing of HTTP frameworks or Redis.
package bridge

import (
	"hash/fnv"
	"time"
)

// Key names one conversation of one brand. Conversation ids are the
// platform's own; a brand's conversation ids must be unique across its
// platforms (they are opaque ids or UUIDs on every supported platform).
type Key struct {
	Brand        string `json:"brand"`
	Conversation string `json:"conversation"`
}

// Partitions is the fixed number of virtual partitions the conversation space
// is split into. A conversation's keys (and its outbox stream) live in one
// partition, so a store can keep each state change in one hash slot of a
// Redis Cluster. Changing it orphans existing state: it is a constant.
const Partitions = 64

// Partition returns the virtual partition of the conversation.
func (k Key) Partition() uint16 {
	h := fnv.New32a()
	h.Write([]byte(k.Brand))
	h.Write([]byte{0})
	h.Write([]byte(k.Conversation))
	return uint16(h.Sum32() % Partitions)
}

// State is where a conversation is in the step-up.
type State string

const (
	// StateAnonymous: seen, nobody verified, no login under way.
	StateAnonymous State = "anonymous"
	// StateLinkIssued: a login link was issued and may still be used.
	StateLinkIssued State = "link_issued"
	// StateLoginVerified: the IdP login checked out; waiting for the consumer
	// to type the confirm code into the conversation (binding confirm-code).
	StateLoginVerified State = "login_verified"
	// StateSteppedUp: the conversation is bound to a verified identity.
	StateSteppedUp State = "stepped_up"
	// StateClosed: the platform closed the conversation; nothing more happens.
	StateClosed State = "closed"
	// StateExpired is never stored: it is what a link_issued or
	// login_verified session reports once its link or code has run out.
	StateExpired State = "expired"
)

// Session is what the bridge knows of one conversation.
type Session struct {
	Key
	Platform  string    `json:"platform"`
	Consumer  string    `json:"consumer,omitempty"` // the platform's (anonymous) consumer id
	Channel   string    `json:"channel,omitempty"`
	State     State     `json:"state"`
	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"`

	// The login link currently valid for this conversation (only the latest
	// issued link works) and how many were issued in total.
	TicketHash    string    `json:"ticket_hash,omitempty"`
	LinkExpiresAt time.Time `json:"link_expires_at,omitzero"`
	LinksIssued   int       `json:"links_issued,omitempty"`

	// Binding confirm-code: the hash of the code shown to the browser, its
	// expiry, the wrong attempts so far and the identity waiting for it.
	CodeHash      string    `json:"code_hash,omitempty"`
	CodeExpiresAt time.Time `json:"code_expires_at,omitzero"`
	CodeAttempts  int       `json:"code_attempts,omitempty"`
	Pending       *Identity `json:"pending,omitempty"`

	// AuthConsumer is the platform's authenticated consumer after a
	// platform-native step-up (the swap's new consumer): a later change to
	// yet another consumer is then visible.
	AuthConsumer string `json:"auth_consumer,omitempty"`

	// Identity is set once stepped up.
	Identity    *Identity `json:"identity,omitempty"`
	SteppedUpAt time.Time `json:"stepped_up_at,omitzero"`
}

// Effective is the state as of now: a link or code past its expiry turns the
// session into StateExpired without a write.
func (s *Session) Effective(now time.Time) State {
	switch s.State {
	case StateLinkIssued:
		if !now.Before(s.LinkExpiresAt) {
			return StateExpired
		}
	case StateLoginVerified:
		if !now.Before(s.CodeExpiresAt) {
			return StateExpired
		}
	}
	return s.State
}

// Identity is a verified login: who, by which IdP, how and when.
type Identity struct {
	Provider      string            `json:"provider"` // IdP name (config: identity.name, default the issuer host)
	Issuer        string            `json:"iss"`
	Subject       string            `json:"sub"`
	Name          string            `json:"name,omitempty"`
	Email         string            `json:"email,omitempty"`
	EmailVerified bool              `json:"email_verified,omitempty"`
	AMR           []string          `json:"amr,omitempty"`
	ACR           string            `json:"acr,omitempty"`
	AuthTime      time.Time         `json:"auth_time,omitzero"`
	VerifiedAt    time.Time         `json:"verified_at"`
	Claims        map[string]string `json:"claims,omitempty"` // extra claims mapped by config (e.g. customer_id)
}

// SameSubject reports whether two identities are the same account.
func (i *Identity) SameSubject(o *Identity) bool {
	return i != nil && o != nil && i.Issuer == o.Issuer && i.Subject == o.Subject
}

// EventKind is what a platform event means to the bridge.
type EventKind string

const (
	EventConversationStarted EventKind = "conversation_started"
	EventConsumerMessage     EventKind = "consumer_message"
	EventAgentMessage        EventKind = "agent_message"
	EventConversationClosed  EventKind = "conversation_closed"
	// EventRefused is a verified event the adapter declines by the
	// platform's rules (Text: a short fixed reason such as "live_chat"): it
	// changes nothing and is counted with that reason.
	EventRefused EventKind = "refused"
)

// Event is one platform event, verified and parsed by an adapter.
type Event struct {
	// ID is unique per event and stable across the platform's retries; the
	// store deduplicates on it in the same atomic call as the state change.
	ID           string
	Kind         EventKind
	Conversation string
	Consumer     string
	Channel      string
	Text         string
	At           time.Time
	// Subject is the customer id the platform authenticated the consumer
	// as (EventIdentitySwap only).
	Subject string
}

// LoginTxn is an OIDC authorization request under way in one browser.
type LoginTxn struct {
	Key       Key       `json:"key"`
	State     string    `json:"state"`
	Nonce     string    `json:"nonce"`
	Verifier  string    `json:"verifier"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Effect is a call the bridge makes to a platform, through the outbox.
type Effect string

const (
	EffectPostMessage    Effect = "post_message"    // tell the consumer something (e.g. the login link)
	EffectAttachIdentity Effect = "attach_identity" // record the verified identity on the conversation/user
	EffectNotifyAgents   Effect = "notify_agents"   // agent-only note that the conversation was stepped up
	EffectRouteSkill     Effect = "route_skill"     // move the conversation to the authenticated skill/queue
)

// OutboxEntry is one durable platform call. It is written in the same atomic
// store call as the state change that causes it.
type OutboxEntry struct {
	// ID is unique and is the idempotency key sent to the platform.
	ID       string `json:"id"`
	Effect   Effect `json:"effect"`
	Key      Key    `json:"key"`
	Platform string `json:"platform"`
	Consumer string `json:"consumer,omitempty"`
	Text     string `json:"text,omitempty"`
	// Identity is filled in by the store, from the session, for entries
	// written by a step-up (the identity is only known to the store then).
	Identity  *Identity `json:"identity,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt, when set, is when the call stops making sense (the login
	// link it carries expires): a later attempt is not made and the entry
	// goes to the dead letters. The outbox retries for days; a link for ten
	// minutes.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Delivery is an outbox entry handed to a worker.
type Delivery struct {
	Entry   OutboxEntry
	Attempt int    // 1 for the first try
	Handle  string // store-specific receipt
	// ClaimedAt is when the store handed the delivery out, by its clock;
	// zero when the store does not say. A store that sets it and
	// implements Renewer promises that a delivery it hands out is neither
	// completed nor anyone else's at that moment (see freshClaim).
	ClaimedAt time.Time
}

// Clone returns a deep copy (stores hand out copies, never shared pointers).
func (s Session) Clone() Session {
	s.Pending = s.Pending.Clone()
	s.Identity = s.Identity.Clone()
	return s
}

// Clone returns a deep copy; nil stays nil.
func (i *Identity) Clone() *Identity {
	if i == nil {
		return nil
	}
	c := *i
	if i.AMR != nil {
		c.AMR = append([]string(nil), i.AMR...)
	}
	if i.Claims != nil {
		c.Claims = make(map[string]string, len(i.Claims))
		for k, v := range i.Claims {
			c.Claims[k] = v
		}
	}
	return &c
}
