package bridge

import (
	"context"
	"errors"
	"time"
)

// Platform-native step-up (DESIGN §4 flow B): the platform swaps the
// anonymous consumer of an open conversation for an authenticated one by
// itself (LivePerson's authentication connector, Sunshine's user merge). The
// bridge learns of the login first — as the platform's token endpoint, or
// from an IdP's login-event webhook — and records it; when the platform's
// webhook shows the swap, the bridge correlates the two and records the
// step-up once, with what was verified, and notifies the agents.

// EventIdentitySwap: the conversation's consumer was replaced by an
// authenticated one. Event.Consumer is the new consumer; Event.Subject is
// the customer id the platform authenticated it as.
const EventIdentitySwap EventKind = "identity_swap"

// DefaultLoginWindow is how long a recorded login waits for its swap when
// the policy does not say.
const DefaultLoginWindow = 30 * time.Minute

// LoginRecord is a login the bridge learned of outside a conversation's own
// login link. On its own it never binds a conversation: only a platform's
// swap (native step-up) or the binding rule does.
type LoginRecord struct {
	Brand string `json:"brand"`
	// Source says how the bridge learned of it: "token_endpoint" (it minted
	// the platform's login token itself), or an IdP event provider name.
	Source string `json:"source"`
	// Verified is false for a hint the bridge could not check
	// cryptographically (e.g. an Okta event hook, which is unsigned and also
	// fires on failed sign-ons). A hint never replaces a verified record.
	Verified bool      `json:"verified"`
	Identity Identity  `json:"identity"`
	At       time.Time `json:"at"`
}

// NativeStepUp records a platform's swap as the step-up of a conversation
// the bridge has seen anonymous.
type NativeStepUp struct {
	EventID  string
	Obs      Observation // Obs.Consumer is the new (authenticated) consumer
	Identity Identity
	Outbox   []OutboxEntry // written, with the identity, if the step-up is recorded
	// BoundElsewhereNote, for an event, is written when the conversation
	// is already bound to another identity (the event then counts as
	// seen): the agents must know the platform now reports someone else.
	BoundElsewhereNote *OutboxEntry
}

// LoginStore keeps recorded logins. Part of Store.
type LoginStore interface {
	// RecordLogin keeps rec as the latest login of (brand, subject) until
	// expiresAt, atomically unless the live record wins: a hint (Verified
	// false) never replaces a verified record, and a record not newer (At)
	// than a live one of the same kind never replaces it, so a late or
	// replayed delivery cannot roll a newer login back. Then it returns
	// ErrLoginSuperseded and changes nothing.
	RecordLogin(ctx context.Context, rec LoginRecord, expiresAt time.Time) error
	// LatestLogin returns the live record of (brand, subject) or ErrNotFound.
	LatestLogin(ctx context.Context, brand, subject string, now time.Time) (LoginRecord, error)
	// NativeStepUp steps up a known conversation once: ErrNotFound if never
	// seen, ErrClosed, ErrAlreadySteppedUp (same subject: nothing to do) or
	// ErrBoundElsewhere (another subject); a duplicate event id returns
	// ErrDuplicate. It changes nothing on any error.
	NativeStepUp(ctx context.Context, cmd NativeStepUp) (Session, error)
}

// ErrLoginSuperseded: RecordLogin kept the live record it was given.
var ErrLoginSuperseded = errors.New("a newer or verified login is already recorded")

// LoginKey is the store key of a subject's recorded login: it has a
// partition of its own like a conversation (the NUL cannot occur in a
// platform's conversation id).
func LoginKey(brand, subject string) Key {
	return Key{Brand: brand, Conversation: "\x00login\x00" + subject}
}

// RecordLogin records a login for later correlation with a platform's
// swap. A login the store already has a newer (or verified) record for is
// not an error: the newer one stands.
func (s *Service) RecordLogin(ctx context.Context, rec LoginRecord) error {
	_, err := s.recordLogin(ctx, rec)
	return err
}

// recordLogin reports whether rec was recorded (false: superseded).
func (s *Service) recordLogin(ctx context.Context, rec LoginRecord) (bool, error) {
	b, err := s.Brand(rec.Brand)
	if err != nil {
		return false, err
	}
	if rec.Identity.Subject == "" {
		return false, errors.Join(ErrMalformed, errors.New("login without subject"))
	}
	if rec.At.IsZero() {
		rec.At = s.clock.Now()
	}
	window := b.Policy.LoginWindow
	if window <= 0 {
		window = DefaultLoginWindow
	}
	kind := "verified"
	if !rec.Verified {
		kind = "hint"
	}
	err = s.store.RecordLogin(ctx, rec, rec.At.Add(window))
	switch {
	case errors.Is(err, ErrLoginSuperseded):
		s.rec.Login(rec.Brand, "superseded_"+kind)
		s.log.InfoContext(ctx, "login not recorded: a newer or verified one stands", "brand", rec.Brand, "source", rec.Source, "verified", rec.Verified)
		return false, nil
	case err != nil:
		return false, err
	}
	s.rec.Login(rec.Brand, "recorded_"+kind)
	s.log.InfoContext(ctx, "login recorded", "brand", rec.Brand, "source", rec.Source, "verified", rec.Verified, "provider", rec.Identity.Provider)
	return true, nil
}

// identitySwap handles EventIdentitySwap: correlate, then one store call.
func (s *Service) identitySwap(ctx context.Context, b *Brand, platform string, ev Event, obs Observation) (string, error) {
	log := s.log.With("brand", b.ID, "platform", platform, "conversation", ev.Conversation, "event", ev.ID)
	if ev.Subject == "" {
		return "malformed", errors.Join(ErrMalformed, errors.New("identity swap without customer id"))
	}
	now := obs.At
	outcome := "stepped_up"
	id, err := s.correlate(ctx, b.ID, platform, ev.Subject, now)
	switch {
	case errors.Is(err, ErrNotFound):
		// The platform authenticated the consumer, but no login of ours
		// explains it (expired window, another path): step up with what the
		// platform says, and say so to the agents.
		outcome = "stepped_up_uncorrelated"
	case err != nil:
		return outcomeOf(err), err
	}
	warning := OutboxEntry{ID: RandomString(16), Effect: EffectNotifyAgents, Key: obs.Key, Platform: platform, Consumer: ev.Consumer, CreatedAt: now,
		Text: "Warning: the platform now reports this consumer as another customer (" + ev.Subject + ") than the one verified in this conversation. " +
			"The conversation stays verified as the first customer only: check who you are talking to before disclosing anything."}
	_, err = s.store.NativeStepUp(ctx, NativeStepUp{EventID: ev.ID, Obs: obs, Identity: id, Outbox: s.stepUpEffects(b, platform, obs.Key, ev.Consumer, now), BoundElsewhereNote: &warning})
	switch {
	case err == nil:
		s.rec.SteppedUp(b.ID, platform)
		log.InfoContext(ctx, "conversation stepped up", "binding", "platform", "correlated", outcome == "stepped_up", "provider", id.Provider)
		return outcome, nil
	case errors.Is(err, ErrAlreadySteppedUp):
		return "already_stepped_up", nil
	case errors.Is(err, ErrBoundElsewhere):
		// A second, different identity on a stepped-up conversation: never
		// rebind; tell the operator.
		log.WarnContext(ctx, "identity swap refused", "reason", err.Error())
		return "refused_bound", nil
	case errors.Is(err, ErrClosed):
		log.WarnContext(ctx, "identity swap refused", "reason", err.Error())
		return "refused_closed", nil
	case errors.Is(err, ErrNotFound):
		// Never seen anonymous: not a step-up the bridge can attest to.
		log.InfoContext(ctx, "identity swap on a conversation never seen anonymous; ignored")
		return "ignored_unknown", nil
	default:
		return outcomeOf(err), err
	}
}

// correlate finds the verified login behind a platform's customer id. With
// none it returns ErrNotFound and the identity the platform vouches for.
func (s *Service) correlate(ctx context.Context, brand, platform, subject string, now time.Time) (Identity, error) {
	rec, err := s.store.LatestLogin(ctx, brand, subject, now)
	if err == nil && rec.Verified {
		id := rec.Identity
		id.VerifiedAt = rec.At
		return id, nil
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Identity{}, err
	}
	return Identity{Provider: platform, Issuer: "platform:" + platform, Subject: subject, VerifiedAt: now}, ErrNotFound
}
