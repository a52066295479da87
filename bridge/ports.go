package bridge

import (
	"context"
	"net/http"
	"time"
)

// Clock is the time source; tests inject a fake one.
type Clock interface{ Now() time.Time }

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns the current time.
func (SystemClock) Now() time.Time { return time.Now() }

// Observation is what an event tells the store about a conversation.
type Observation struct {
	Key      Key
	Platform string
	Consumer string
	Channel  string
	At       time.Time
}

// IssueTicket asks the store to record a new login link.
type IssueTicket struct {
	// EventID deduplicates a link requested by a platform event (agent
	// command); empty for API requests, which are not idempotent.
	EventID string
	// Obs creates or refreshes the session; nil means the session must exist.
	Obs *Observation
	Key Key
	// TicketHash is Hash(ticket secret); the raw ticket is never stored
	// outside the outbox entry that carries the link to the consumer.
	TicketHash string
	Now        time.Time
	ExpiresAt  time.Time
	MaxLinks   int // links per conversation; 0 = unlimited
	Outbox     []OutboxEntry
	// RefusalNotes, for a command from an event (EventID set), are written
	// when the command is refused, keyed by the refusal (ErrClosed,
	// ErrAlreadySteppedUp, ErrTooManyLinks): the agent who typed the
	// command learns why no link went out. The event then counts as seen.
	RefusalNotes map[error]OutboxEntry
}

// BeginLogin consumes a ticket and stores the OIDC transaction it starts.
type BeginLogin struct {
	Brand      string
	Partition  uint16
	TicketHash string
	TxnHash    string
	Txn        LoginTxn // Key is filled in by the store from the ticket
	Now        time.Time
}

// VerifyLogin records a verified login for a conversation.
type VerifyLogin struct {
	Key      Key
	Identity Identity
	Now      time.Time
	// With confirm-code binding: the code's hash, expiry and attempts. With
	// binding none CodeHash is empty and the session steps up at once,
	// writing Outbox.
	CodeHash      string
	CodeExpiresAt time.Time
	Outbox        []OutboxEntry
}

// ConfirmCode is a consumer message that looks like a confirm code.
type ConfirmCode struct {
	EventID     string
	Obs         Observation
	CodeHash    string
	MaxAttempts int
	Outbox      []OutboxEntry // written (with the identity) if the code matches
	// Feedback is written when the result is its key (mismatch, locked,
	// expired): tells the consumer what happened to the code they typed.
	Feedback map[CodeResult]OutboxEntry
}

// CodeResult is what a ConfirmCode did.
type CodeResult string

const (
	CodeMatched   CodeResult = "matched"    // stepped up; outbox written
	CodeMismatch  CodeResult = "mismatch"   // wrong code; an attempt used
	CodeLocked    CodeResult = "locked"     // too many wrong codes; the login is discarded
	CodeExpired   CodeResult = "expired"    // the code ran out; the login is discarded
	CodeNoPending CodeResult = "no_pending" // no login waiting: an ordinary message
)

// Store keeps all state. Every method that changes state is one atomic
// operation: it applies completely or not at all, and when given an event id
// it applies at most once per id (a duplicate returns ErrDuplicate and
// changes nothing). Implementations: bridge/memstore, bridge/redisstore; both
// pass bridge/storetest.
type Store interface {
	// Observe creates the session on first sight (anonymous) or refreshes it.
	// It answers no session: it runs for nearly every event, and no caller
	// needs one (Get reads it).
	Observe(ctx context.Context, eventID string, obs Observation) error
	// Get returns the session or ErrNotFound.
	Get(ctx context.Context, key Key) (Session, error)
	// IssueTicket records a new login link; it replaces any earlier one.
	IssueTicket(ctx context.Context, cmd IssueTicket) (Session, error)
	// PeekTicket returns the session a valid ticket belongs to, changing nothing.
	PeekTicket(ctx context.Context, brand string, partition uint16, ticketHash string, now time.Time) (Session, error)
	// BeginLogin consumes the ticket (once) and stores the transaction.
	BeginLogin(ctx context.Context, cmd BeginLogin) (Session, error)
	// TakeLogin returns and deletes the transaction (once).
	TakeLogin(ctx context.Context, brand string, partition uint16, txnHash string, now time.Time) (LoginTxn, error)
	// VerifyLogin records the login: pending a code, or stepped up.
	VerifyLogin(ctx context.Context, cmd VerifyLogin) (Session, error)
	// ConfirmCode checks a code typed in the conversation.
	ConfirmCode(ctx context.Context, cmd ConfirmCode) (CodeResult, Session, error)
	// Close marks the conversation closed (created closed if never seen).
	Close(ctx context.Context, eventID string, obs Observation) error
	// Ping checks the store is reachable.
	Ping(ctx context.Context) error

	LoginStore
	Outbox
}

// Outbox hands durable platform calls to workers.
type Outbox interface {
	// Claim returns up to max deliveries that are due, waiting up to wait
	// for one to arrive. A claimed delivery not acked, retried or buried
	// within the store's visibility timeout is handed out again.
	Claim(ctx context.Context, worker string, max int, wait time.Duration) ([]Delivery, error)
	// Ack marks the delivery done; it is never handed out again.
	Ack(ctx context.Context, d Delivery) error
	// Retry hands the delivery out again at (or after) at.
	Retry(ctx context.Context, d Delivery, at time.Time, reason string) error
	// Bury moves the delivery to the dead letters.
	Bury(ctx context.Context, d Delivery, reason string) error
}

// WebhookRequest is an inbound platform call as the HTTP layer saw it.
type WebhookRequest struct {
	Header   http.Header
	Body     []byte // raw bytes, as signed
	Origin   string // the bridge's public origin (scheme://host) the platform called
	Target   string // the request target: path and query
	Received time.Time
}

// URL is the absolute URL as the platform called it (some schemes sign
// it); built on demand, as most adapters never need it.
func (r WebhookRequest) URL() string { return r.Origin + r.Target }

// Platform is a messaging platform adapter for one brand.
type Platform interface {
	// ParseWebhook authenticates the request on its raw body, then parses it.
	// Errors wrap ErrUnauthenticated or ErrMalformed.
	ParseWebhook(ctx context.Context, req WebhookRequest) ([]Event, error)
	// Deliver makes one outbox call. Errors wrapped with Permanent are not
	// retried. The entry ID is the idempotency key.
	Deliver(ctx context.Context, entry OutboxEntry) error
}

// IdentityProvider is the brand's OpenID Connect provider.
type IdentityProvider interface {
	// AuthURL is the authorization request URL for the given transaction.
	AuthURL(state, nonce, codeChallenge string) string
	// Redeem exchanges the code (with the PKCE verifier), verifies the ID
	// token (signature, iss, aud, azp, exp, iat, nbf, nonce) and maps its
	// claims. Errors wrap ErrLoginRejected.
	Redeem(ctx context.Context, code, verifier, nonce string) (Identity, error)
	// Ready reports whether the provider's keys are loaded.
	Ready(ctx context.Context) error
	// Issuer is the provider's pinned issuer (checked against the RFC 9207
	// iss callback parameter).
	Issuer() string
}

// CallbackIssuerChecker is an IdentityProvider that applies RFC 9207 to the
// callback's iss parameter itself: it knows whether the IdP advertises it,
// and then a missing iss is refused too. Errors wrap ErrLoginRejected.
type CallbackIssuerChecker interface {
	CheckCallbackIssuer(iss string) error
}

// Recorder receives domain events for metrics. Labels are brand and
// platform names, never ids.
type Recorder interface {
	Event(brand, platform string, kind EventKind, outcome string)
	LinkIssued(brand, via string)
	Login(brand, outcome string)
	Code(brand string, result CodeResult)
	SteppedUp(brand, platform string)
	Delivery(brand, platform string, effect Effect, outcome string)
}

type nopRecorder struct{}

func (nopRecorder) Event(string, string, EventKind, string) {}
func (nopRecorder) LinkIssued(string, string)               {}
func (nopRecorder) Login(string, string)                    {}
func (nopRecorder) Code(string, CodeResult)                 {}
func (nopRecorder) SteppedUp(string, string)                {}
func (nopRecorder) Delivery(string, string, Effect, string) {}
