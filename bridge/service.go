package bridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"time"
)

// Binding modes (see DESIGN §6).
const (
	BindingConfirmCode = "confirm-code"
	BindingNone        = "none"
)

// Policy is a brand's step-up policy, built from config.
type Policy struct {
	LinkTTL      time.Duration
	TxnTTL       time.Duration // how long a login may take at the IdP
	Binding      string
	CodeTTL      time.Duration
	CodeLength   int
	CodeAttempts int
	MaxLinks     int
	Channels     []string // allowed channels; empty = all
	AgentCommand string
	LinkMessage  *template.Template // over struct{URL string}
	NotifyAgents bool
	// NotifyMessage renders the agent note over the Identity.
	NotifyMessage   *template.Template
	ConsumerMessage string
	Skill           string
	// LoginWindow is how long a recorded login (platform-native step-up)
	// waits for the platform's swap; 0 = DefaultLoginWindow.
	LoginWindow time.Duration
	// CodeFeedback is what the consumer is told when a code they typed did
	// not match, locked the login or had expired ("" or absent: nothing).
	CodeFeedback map[CodeResult]string
}

// Brand is one tenant wired to its adapters.
type Brand struct {
	ID        string
	Platforms map[string]Platform // by platform type, as in /webhooks/{brand}/{platform}
	Identity  IdentityProvider
	Policy    Policy
	// LoginEvents are the IdP's login-event sources by provider name, as
	// in /idp/{brand}/{provider} (see loginevents.go).
	LoginEvents map[string]LoginEventSource
}

// Options build a Service.
type Options struct {
	Store     Store
	Brands    []*Brand
	PublicURL string // base of login links
	Clock     Clock
	Logger    *slog.Logger
	Recorder  Recorder
}

// Service orchestrates the step-up: every state change goes to the store as
// one atomic call, and every platform call goes through the outbox.
type Service struct {
	store     Store
	brands    map[string]*Brand
	publicURL string
	clock     Clock
	log       *slog.Logger
	rec       Recorder
}

// NewService wires a service.
func NewService(o Options) (*Service, error) {
	if o.Store == nil {
		return nil, errors.New("bridge: no store")
	}
	s := &Service{store: o.Store, brands: map[string]*Brand{}, publicURL: strings.TrimRight(o.PublicURL, "/"), clock: o.Clock, log: o.Logger, rec: o.Recorder}
	if s.clock == nil {
		s.clock = SystemClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.rec == nil {
		s.rec = nopRecorder{}
	}
	for _, b := range o.Brands {
		if _, dup := s.brands[b.ID]; dup {
			return nil, fmt.Errorf("bridge: duplicate brand %q", b.ID)
		}
		s.brands[b.ID] = b
		bindBrand(b, s.store)
	}
	return s, nil
}

// Store returns the service's store (for readiness and tooling).
func (s *Service) Store() Store { return s.store }

// Brand returns a configured brand or ErrUnknownBrand.
func (s *Service) Brand(id string) (*Brand, error) {
	b, ok := s.brands[id]
	if !ok {
		return nil, ErrUnknownBrand
	}
	return b, nil
}

// Brands lists the brand ids.
func (s *Service) Brands() []string {
	ids := make([]string, 0, len(s.brands))
	for id := range s.brands {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// WebhookResult says what a webhook did.
type WebhookResult struct {
	Events     int `json:"events"`
	Duplicates int `json:"duplicates"`
}

// HandleWebhook authenticates and applies one platform call. It returns
// only after every event is durably recorded; an error means the platform
// should retry (store) or stop (authentication, malformed).
func (s *Service) HandleWebhook(ctx context.Context, brandID, platform string, req WebhookRequest) (WebhookResult, error) {
	var res WebhookResult
	b, err := s.Brand(brandID)
	if err != nil {
		return res, err
	}
	p, ok := b.Platforms[platform]
	if !ok {
		return res, ErrUnknownPlatform
	}
	events, err := p.ParseWebhook(ctx, req)
	if err != nil {
		s.rec.Event(brandID, platform, "", outcomeOf(err))
		return res, err
	}
	for _, ev := range events {
		// Event ids are the platform's own: two platforms of one brand may
		// reuse an id, so the dedupe key carries the platform.
		if ev.ID != "" {
			ev.ID = platform + ":" + ev.ID
		}
		outcome, err := s.handleEvent(ctx, b, platform, ev)
		s.rec.Event(brandID, platform, ev.Kind, outcome)
		switch {
		case errors.Is(err, ErrDuplicate):
			res.Duplicates++
		case err != nil:
			return res, err
		default:
			res.Events++
		}
	}
	return res, nil
}

func outcomeOf(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrDuplicate):
		return "duplicate"
	case errors.Is(err, ErrUnauthenticated):
		return "unauthenticated"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	default:
		return "error"
	}
}

// handleEvent applies one event with exactly one store call.
func (s *Service) handleEvent(ctx context.Context, b *Brand, platform string, ev Event) (string, error) {
	now := s.clock.Now()
	key := Key{Brand: b.ID, Conversation: ev.Conversation}
	obs := Observation{Key: key, Platform: platform, Consumer: ev.Consumer, Channel: ev.Channel, At: now}
	// Built only when a line is written: With formats and scrubs its
	// attributes at once, and most events log nothing.
	log := func() *slog.Logger {
		return s.log.With("brand", b.ID, "platform", platform, "conversation", ev.Conversation, "event", ev.ID)
	}
	pol := b.Policy

	switch ev.Kind {
	case EventConsumerMessage:
		code := ""
		if pol.Binding == BindingConfirmCode {
			code = NormalizeCode(ev.Text, pol.CodeLength)
		}
		if code == "" {
			err := s.store.Observe(ctx, ev.ID, obs)
			return outcomeOf(err), err
		}
		res, sess, err := s.store.ConfirmCode(ctx, ConfirmCode{
			EventID: ev.ID, Obs: obs, CodeHash: CodeHash(key, code), MaxAttempts: pol.CodeAttempts,
			Outbox:   s.stepUpEffects(b, platform, key, ev.Consumer, now),
			Feedback: s.codeFeedback(b, platform, key, ev.Consumer, now),
		})
		if err != nil {
			return outcomeOf(err), err
		}
		s.rec.Code(b.ID, res)
		if res != CodeNoPending {
			log().InfoContext(ctx, "confirm code", "result", string(res), "attempts", sess.CodeAttempts)
		}
		if res == CodeMatched {
			s.rec.SteppedUp(b.ID, platform)
			log().InfoContext(ctx, "conversation stepped up", "binding", pol.Binding)
		}
		return "code_" + string(res), nil

	case EventAgentMessage:
		if pol.AgentCommand == "" || !strings.EqualFold(strings.TrimSpace(ev.Text), pol.AgentCommand) {
			err := s.store.Observe(ctx, ev.ID, obs)
			return outcomeOf(err), err
		}
		// An agent's message seldom names the channel or the consumer: the
		// conversation's own decide the policy and receive the link.
		channel, consumer := ev.Channel, ev.Consumer
		if channel == "" || consumer == "" {
			if sess, err := s.store.Get(ctx, key); err == nil {
				channel, consumer = cmp.Or(channel, sess.Channel), cmp.Or(consumer, sess.Consumer)
			}
		}
		if !channelAllowed(pol, channel) {
			err := s.store.Observe(ctx, ev.ID, obs)
			log().WarnContext(ctx, "agent command refused", "reason", ErrChannelRefused.Error(), "channel", channel)
			return "refused_channel", err
		}
		o := obs // its own copy: taking obs's address would move it to the heap on every event's path
		_, _, err := s.issue(ctx, b, key, ev.ID, &o, platform, consumer, true)
		switch {
		case errors.Is(err, ErrClosed), errors.Is(err, ErrAlreadySteppedUp), errors.Is(err, ErrTooManyLinks):
			// A refusal is an answer, not a failure: acknowledge the event.
			log().WarnContext(ctx, "agent command refused", "reason", err.Error())
			return "refused", nil
		case err != nil:
			return outcomeOf(err), err
		}
		s.rec.LinkIssued(b.ID, "agent_command")
		log().InfoContext(ctx, "login link issued", "via", "agent_command")
		return "link_issued", nil

	case EventRefused:
		// Declined by the platform's own rule (e.g. live chat where step-up
		// is messaging only): nothing to store, but counted and said.
		log().InfoContext(ctx, "event refused", "reason", ev.Text)
		return "refused_" + ev.Text, nil

	case EventIdentitySwap:
		return s.identitySwap(ctx, b, platform, ev, obs)

	case EventConversationClosed:
		err := s.store.Close(ctx, ev.ID, obs)
		return outcomeOf(err), err

	default: // started, and anything an adapter maps to a plain observation
		err := s.store.Observe(ctx, ev.ID, obs)
		return outcomeOf(err), err
	}
}

func channelAllowed(p Policy, channel string) bool {
	return len(p.Channels) == 0 || slices.Contains(p.Channels, channel)
}

// stepUpEffects are the platform calls a step-up makes. The store fills in
// the identity when it commits the step-up.
func (s *Service) stepUpEffects(b *Brand, platform string, key Key, consumer string, now time.Time) []OutboxEntry {
	mk := func(e Effect, text string) OutboxEntry {
		return OutboxEntry{ID: RandomString(16), Effect: e, Key: key, Platform: platform, Consumer: consumer, Text: text, CreatedAt: now}
	}
	out := []OutboxEntry{mk(EffectAttachIdentity, "")}
	if b.Policy.NotifyAgents {
		out = append(out, mk(EffectNotifyAgents, ""))
	}
	if b.Policy.ConsumerMessage != "" {
		out = append(out, mk(EffectPostMessage, b.Policy.ConsumerMessage))
	}
	if b.Policy.Skill != "" {
		out = append(out, mk(EffectRouteSkill, b.Policy.Skill))
	}
	return out
}

// codeFeedback are the consumer messages for each failed code result.
func (s *Service) codeFeedback(b *Brand, platform string, key Key, consumer string, now time.Time) map[CodeResult]OutboxEntry {
	var out map[CodeResult]OutboxEntry
	for res, text := range b.Policy.CodeFeedback {
		if text == "" {
			continue
		}
		if out == nil {
			out = map[CodeResult]OutboxEntry{}
		}
		out[res] = OutboxEntry{ID: RandomString(16), Effect: EffectPostMessage, Key: key, Platform: platform, Consumer: consumer, Text: text, CreatedAt: now}
	}
	return out
}

// Link is an issued login link.
type Link struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
	Posted    bool      `json:"posted"`
}

// RequestLink issues a login link for a known conversation (API, bot, agent
// widget) and, if post is set, posts it to the consumer through the outbox.
func (s *Service) RequestLink(ctx context.Context, brandID, conversation string, post bool) (Link, error) {
	b, err := s.Brand(brandID)
	if err != nil {
		return Link{}, err
	}
	key := Key{Brand: brandID, Conversation: conversation}
	sess, err := s.store.Get(ctx, key)
	if err != nil {
		return Link{}, err
	}
	if !channelAllowed(b.Policy, sess.Channel) {
		return Link{}, ErrChannelRefused
	}
	link, _, err := s.issue(ctx, b, key, "", nil, sess.Platform, sess.Consumer, post)
	if err == nil {
		s.rec.LinkIssued(brandID, "api")
		s.log.InfoContext(ctx, "login link issued", "brand", brandID, "conversation", conversation, "via", "api", "posted", post)
	}
	return link, err
}

func (s *Service) issue(ctx context.Context, b *Brand, key Key, eventID string, obs *Observation, platform, consumer string, post bool) (Link, Session, error) {
	now := s.clock.Now()
	tok := NewToken(key)
	link := Link{URL: s.publicURL + "/login/" + url.PathEscape(b.ID) + "/" + tok.String(), ExpiresAt: now.Add(b.Policy.LinkTTL), Posted: post}
	var outbox []OutboxEntry
	if post {
		var text strings.Builder
		if err := b.Policy.LinkMessage.Execute(&text, struct{ URL string }{link.URL}); err != nil {
			return Link{}, Session{}, fmt.Errorf("render link message: %w", err)
		}
		outbox = append(outbox, OutboxEntry{ID: RandomString(16), Effect: EffectPostMessage, Key: key, Platform: platform, Consumer: consumer, Text: text.String(), CreatedAt: now, ExpiresAt: link.ExpiresAt})
	}
	cmd := IssueTicket{
		EventID: eventID, Obs: obs, Key: key, TicketHash: tok.Hash(), Now: now,
		ExpiresAt: link.ExpiresAt, MaxLinks: b.Policy.MaxLinks, Outbox: outbox,
	}
	if eventID != "" {
		// An agent's command: if it is refused, say why in an agents-only
		// note (an API caller gets the reason in the HTTP answer instead).
		note := func(text string) OutboxEntry {
			return OutboxEntry{ID: RandomString(16), Effect: EffectNotifyAgents, Key: key, Platform: platform, Consumer: consumer, Text: text, CreatedAt: now}
		}
		cmd.RefusalNotes = map[error]OutboxEntry{
			ErrAlreadySteppedUp: note("No verification link sent: this conversation is already verified."),
			ErrClosed:           note("No verification link sent: this conversation is closed."),
			ErrTooManyLinks:     note(fmt.Sprintf("No verification link sent: this conversation already had %d links, the most allowed.", b.Policy.MaxLinks)),
		}
	}
	sess, err := s.store.IssueTicket(ctx, cmd)
	return link, sess, err
}

// Status returns a conversation's session.
func (s *Service) Status(ctx context.Context, brandID, conversation string) (Session, error) {
	if _, err := s.Brand(brandID); err != nil {
		return Session{}, err
	}
	return s.store.Get(ctx, Key{Brand: brandID, Conversation: conversation})
}

// PreviewLogin returns the conversation a login link would step up,
// changing nothing (the page shown before the IdP redirect).
func (s *Service) PreviewLogin(ctx context.Context, brandID, ticket string) (Session, error) {
	if _, err := s.Brand(brandID); err != nil {
		return Session{}, err
	}
	tok, err := ParseToken(ticket)
	if err != nil {
		return Session{}, ErrTicketInvalid
	}
	return s.store.PeekTicket(ctx, brandID, tok.Partition, tok.Hash(), s.clock.Now())
}

// LoginStart is where to send the browser, and the cookie that binds the
// transaction to it.
type LoginStart struct {
	AuthURL   string
	TxnCookie string
	ExpiresAt time.Time
}

// StartLogin consumes a login link and starts the OIDC authorization
// request with state, nonce and PKCE S256.
func (s *Service) StartLogin(ctx context.Context, brandID, ticket string) (LoginStart, error) {
	b, err := s.Brand(brandID)
	if err != nil {
		return LoginStart{}, err
	}
	tok, err := ParseToken(ticket)
	if err != nil {
		return LoginStart{}, ErrTicketInvalid
	}
	// Check the IdP first: a link must not be spent on a login that cannot start.
	if err := b.Identity.Ready(ctx); err != nil {
		return LoginStart{}, fmt.Errorf("%w: identity provider: %v", ErrUnavailable, err)
	}
	now := s.clock.Now()
	txnTok := NewTokenIn(tok.Partition)
	txn := LoginTxn{State: RandomString(32), Nonce: RandomString(32), Verifier: RandomString(48), CreatedAt: now, ExpiresAt: now.Add(b.Policy.TxnTTL)}
	sess, err := s.store.BeginLogin(ctx, BeginLogin{Brand: brandID, Partition: tok.Partition, TicketHash: tok.Hash(), TxnHash: txnTok.Hash(), Txn: txn, Now: now})
	if err != nil {
		return LoginStart{}, err
	}
	s.log.InfoContext(ctx, "login started", "brand", brandID, "conversation", sess.Conversation)
	return LoginStart{AuthURL: b.Identity.AuthURL(txn.State, txn.Nonce, PKCEChallenge(txn.Verifier)), TxnCookie: txnTok.String(), ExpiresAt: txn.ExpiresAt}, nil
}

// Callback is what the IdP sent back to the redirect URI.
type Callback struct {
	State, Code, Iss string
	Error            string // OAuth error code, e.g. access_denied
}

// LoginResult is the outcome of a verified login.
type LoginResult struct {
	Session Session
	// Code is the confirm code to show in the browser (binding confirm-code);
	// empty when the conversation stepped up at once (binding none).
	Code      string
	CodeTTL   time.Duration
	SteppedUp bool
}

// FinishLogin completes the OIDC callback: the transaction is taken (once),
// its state compared, the code redeemed and the ID token verified, then the
// login is bound to the conversation as the brand's binding mode says.
func (s *Service) FinishLogin(ctx context.Context, brandID, txnCookie string, cb Callback) (LoginResult, error) {
	b, err := s.Brand(brandID)
	if err != nil {
		return LoginResult{}, err
	}
	txnTok, err := ParseToken(txnCookie)
	if err != nil {
		return LoginResult{}, ErrLoginInvalid
	}
	now := s.clock.Now()
	txn, err := s.store.TakeLogin(ctx, brandID, txnTok.Partition, txnTok.Hash(), now)
	if err != nil {
		return LoginResult{}, err
	}
	log := s.log.With("brand", brandID, "conversation", txn.Key.Conversation)
	fail := func(reason string, err error) (LoginResult, error) {
		s.rec.Login(brandID, reason)
		log.WarnContext(ctx, "login failed", "reason", reason, "error", err)
		return LoginResult{}, err
	}
	if !EqualSecret(cb.State, txn.State) {
		return fail("state_mismatch", ErrLoginInvalid)
	}
	if cb.Error != "" {
		return fail("idp_error", fmt.Errorf("%w: identity provider answered %s", ErrLoginRejected, safeToken(cb.Error)))
	}
	if c, ok := b.Identity.(CallbackIssuerChecker); ok {
		if err := c.CheckCallbackIssuer(cb.Iss); err != nil {
			return fail("iss_mismatch", err)
		}
	} else if cb.Iss != "" && cb.Iss != b.Identity.Issuer() {
		return fail("iss_mismatch", fmt.Errorf("%w: callback iss does not match the issuer", ErrLoginRejected))
	}
	id, err := b.Identity.Redeem(ctx, cb.Code, txn.Verifier, txn.Nonce)
	if errors.Is(err, ErrIdPUnavailable) {
		return fail("idp_unavailable", err)
	}
	if err != nil {
		return fail("token_rejected", err)
	}
	// The login happened now, after the code exchange, not when the
	// callback arrived.
	now = s.clock.Now()
	cmd := VerifyLogin{Key: txn.Key, Identity: id, Now: now}
	var code string
	if b.Policy.Binding == BindingConfirmCode {
		code = NewCode(b.Policy.CodeLength)
		cmd.CodeHash = CodeHash(txn.Key, code)
		cmd.CodeExpiresAt = now.Add(b.Policy.CodeTTL)
	} else {
		// No code: the platform call targets the conversation's consumer as recorded.
		sess, err := s.store.Get(ctx, txn.Key)
		if err != nil {
			return fail("store", err)
		}
		cmd.Outbox = s.stepUpEffects(b, sess.Platform, txn.Key, sess.Consumer, now)
	}
	sess, err := s.store.VerifyLogin(ctx, cmd)
	if err != nil {
		return fail("bind_refused", err)
	}
	s.rec.Login(brandID, "verified")
	log.InfoContext(ctx, "login verified", "binding", b.Policy.Binding, "provider", id.Provider)
	res := LoginResult{Session: sess, Code: code, CodeTTL: b.Policy.CodeTTL}
	if code == "" {
		res.SteppedUp = true
		s.rec.SteppedUp(brandID, sess.Platform)
	}
	return res, nil
}

// safeToken keeps an IdP-supplied error code printable and short.
func safeToken(v string) string {
	if len(v) > 64 {
		v = v[:64]
	}
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return -1
	}, v)
}

// Ready reports whether the store answers and every IdP has its keys.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return &NotReadyError{Component: "store", Err: err}
	}
	for _, id := range s.Brands() {
		if err := s.brands[id].Identity.Ready(ctx); err != nil {
			return &NotReadyError{Component: "brand " + id + " identity provider", Err: err}
		}
	}
	return nil
}

// NotReadyError names what is not ready. Component is safe to show to
// anyone who can reach /readyz; Err (addresses, issuer URLs) is for logs.
type NotReadyError struct {
	Component string
	Err       error
}

func (e *NotReadyError) Error() string { return e.Component + ": " + e.Err.Error() }
func (e *NotReadyError) Unwrap() error { return e.Err }
