package bridge

import (
	"context"
	"errors"
	"time"
)

// Login events: identity providers announce logins server to server
// (POST /idp/{brand}/{provider}): Okta event hooks, a token posted by an
// Auth0 Action, Keycloak event webhooks, any issuer posting a JWT it signed.
// Each is recorded with RecordLogin for correlation with a platform-native
// step-up. A login event never binds a conversation by itself.

var (
	// ErrUnknownLoginSource: the brand has no login-event provider by that name.
	ErrUnknownLoginSource = errors.New("login event provider not configured for this brand")
	// ErrNoChallenge: the provider has no verification challenge (GET).
	ErrNoChallenge = errors.New("login event provider has no verification challenge")
)

// LoginEventSource authenticates and parses one provider's login events.
type LoginEventSource interface {
	// Parse authenticates req on its raw body, then parses it into the
	// logins it reports (Brand and Source are filled in by the service).
	// Events that are not successful logins are left out, not errors.
	// Errors wrap ErrUnauthenticated (bad secret, signature or token),
	// ErrMalformed (unparseable body), or neither when the source cannot
	// check right now (e.g. its keys are not loaded): the IdP should retry.
	Parse(ctx context.Context, req WebhookRequest) ([]LoginRecord, error)
}

// LoginEventChallenger is a LoginEventSource with a one-time GET
// verification (Okta event hooks): Challenge authenticates req and returns
// the value to echo.
type LoginEventChallenger interface {
	Challenge(ctx context.Context, req WebhookRequest) (string, error)
}

// LoginEventReadiness is a LoginEventSource that depends on remote keys.
type LoginEventReadiness interface {
	Ready(ctx context.Context) error
}

// MaxEventSkew is how far in the future an event's time may be (clock skew).
const MaxEventSkew = 2 * time.Minute

// LoginEventResult says what a login-event call did.
type LoginEventResult struct {
	Recorded int `json:"recorded"`
	Ignored  int `json:"ignored"`
}

// loginSource returns the brand's named login-event source.
func (s *Service) loginSource(brandID, provider string) (*Brand, LoginEventSource, error) {
	b, err := s.Brand(brandID)
	if err != nil {
		return nil, nil, err
	}
	src, ok := b.LoginEvents[provider]
	if !ok || src == nil {
		return nil, nil, ErrUnknownLoginSource
	}
	return b, src, nil
}

// HandleLoginEvent authenticates one login-event call and records each
// login it reports. It returns after every record is durably written; an
// error means the IdP should retry (store) or stop (authentication,
// malformed). Records outside the brand's login window (stale or from the
// future) and records older than the live one for the same subject are
// ignored, so a replayed or late delivery never rolls a newer login back.
func (s *Service) HandleLoginEvent(ctx context.Context, brandID, provider string, req WebhookRequest) (LoginEventResult, error) {
	var res LoginEventResult
	b, src, err := s.loginSource(brandID, provider)
	if err != nil {
		return res, err
	}
	log := s.log.With("brand", brandID, "login_source", provider)
	recs, err := src.Parse(ctx, req)
	if err != nil {
		s.rec.Login(brandID, "event_"+outcomeOf(err))
		log.WarnContext(ctx, "login event refused", "outcome", outcomeOf(err), "error", err)
		return res, err
	}
	now := s.clock.Now()
	window := b.Policy.LoginWindow
	if window <= 0 {
		window = DefaultLoginWindow
	}
	for _, rec := range recs {
		rec.Brand, rec.Source = brandID, provider
		reason := ""
		switch {
		case rec.Identity.Subject == "":
			reason = "no_subject"
		case rec.At.IsZero():
			reason = "no_time"
		case !rec.At.Add(window).After(now):
			reason = "stale"
		case rec.At.After(now.Add(MaxEventSkew)):
			reason = "future"
		}
		if reason != "" {
			res.Ignored++
			s.rec.Login(brandID, "event_ignored_"+reason)
			log.InfoContext(ctx, "login event ignored", "reason", reason, "verified", rec.Verified)
			continue
		}
		// The store refuses, atomically, a record older than the live one
		// and a hint over a verified login.
		recorded, err := s.recordLogin(ctx, rec)
		if err != nil {
			return res, err
		}
		if !recorded {
			res.Ignored++
			continue
		}
		res.Recorded++
	}
	return res, nil
}

// LoginEventChallenge answers a provider's one-time verification request
// (Okta: GET with X-Okta-Verification-Challenge) after authenticating it.
func (s *Service) LoginEventChallenge(ctx context.Context, brandID, provider string, req WebhookRequest) (string, error) {
	_, src, err := s.loginSource(brandID, provider)
	if err != nil {
		return "", err
	}
	ch, ok := src.(LoginEventChallenger)
	if !ok {
		return "", ErrNoChallenge
	}
	v, err := ch.Challenge(ctx, req)
	if err != nil {
		s.log.WarnContext(ctx, "login event verification refused", "brand", brandID, "login_source", provider, "outcome", outcomeOf(err), "error", err)
		return "", err
	}
	s.log.InfoContext(ctx, "login event verification answered", "brand", brandID, "login_source", provider)
	return v, nil
}

// LoginEventsReady reports whether every login-event source that depends on
// remote keys has them.
func (s *Service) LoginEventsReady(ctx context.Context) error {
	for _, id := range s.Brands() {
		for name, src := range s.brands[id].LoginEvents {
			if r, ok := src.(LoginEventReadiness); ok {
				if err := r.Ready(ctx); err != nil {
					return errors.Join(errors.New("brand "+id+" login events "+name), err)
				}
			}
		}
	}
	return nil
}
