package idpevents

import (
	"context"
	"slices"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// Okta event hooks (okta-developer-docs, concepts/event-hooks): a JSON POST
// with data.events[] (LogEvent objects, possibly batched), authenticated by
// nothing but the static Authorization header value configured at Okta;
// and once, a GET with X-Okta-Verification-Challenge to echo.

// OktaChallengeHeader carries the one-time verification value.
const OktaChallengeHeader = "X-Okta-Verification-Challenge"

// maxChallengeLen bounds the echoed value (Okta's are about 40 characters).
const maxChallengeLen = 256

// oktaLoginEvents are the event types that report a sign-in.
var oktaLoginEvents = []string{"user.session.start", "user.authentication.sso"}

type okta struct {
	cfg     config.LoginEvents
	secrets secretSet
	clock   bridge.Clock
}

var (
	_ bridge.LoginEventSource     = (*okta)(nil)
	_ bridge.LoginEventChallenger = (*okta)(nil)
)

func newOkta(cfg config.LoginEvents, o Options) (*okta, error) {
	s, err := newSecretSet(cfg.Secrets, minSecretLen)
	if err != nil {
		return nil, err
	}
	return &okta{cfg: cfg, secrets: s, clock: o.Clock}, nil
}

func (*okta) Close() {}

// authenticate checks the Authorization header against the secrets, in
// constant time. The Okta doc's sample verification handler skips this;
// Okta sends the header on the verification GET too, so it is required.
func (k *okta) authenticate(req bridge.WebhookRequest) error {
	v := req.Header.Values("Authorization")
	switch {
	case len(v) == 0 || v[0] == "":
		return unauthenticated("missing Authorization header")
	case len(v) > 1:
		return unauthenticated("several Authorization headers")
	case !k.secrets.match(v[0]):
		return unauthenticated("Authorization header does not match")
	}
	return nil
}

// Challenge answers the one-time verification GET, after authentication.
func (k *okta) Challenge(_ context.Context, req bridge.WebhookRequest) (string, error) {
	if err := k.authenticate(req); err != nil {
		return "", err
	}
	v := req.Header.Get(OktaChallengeHeader)
	if v == "" || len(v) > maxChallengeLen {
		return "", malformed("missing or oversized " + OktaChallengeHeader)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return "", malformed(OktaChallengeHeader + " must be printable ASCII")
		}
	}
	return v, nil
}

type oktaHook struct {
	EventType string `json:"eventType"`
	EventID   string `json:"eventId"`
	Data      struct {
		Events []oktaEvent `json:"events"`
	} `json:"data"`
}

type oktaEvent struct {
	UUID      string `json:"uuid"`
	Published string `json:"published"`
	EventType string `json:"eventType"`
	Actor     struct {
		ID          string `json:"id"`
		Type        string `json:"type"`
		DisplayName string `json:"displayName"`
	} `json:"actor"`
	Outcome struct {
		Result string `json:"result"`
	} `json:"outcome"`
	Target []struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"target"`
}

// Parse authenticates the hook, then keeps the successful sign-ins of
// users: user.session.start, and user.authentication.sso into one of the
// configured app instances (if any are configured), published within
// max_event_age. Each is a hint: Verified false, subject the Okta user id.
func (k *okta) Parse(_ context.Context, req bridge.WebhookRequest) ([]bridge.LoginRecord, error) {
	if err := k.authenticate(req); err != nil {
		return nil, err
	}
	var hook oktaHook
	if err := decodeJSON(req.Body, &hook); err != nil {
		return nil, err
	}
	if hook.EventType != "com.okta.event_hook" {
		return nil, malformed("not an Okta event hook (eventType)")
	}
	if len(hook.Data.Events) > maxEvents {
		return nil, malformed("too many events in one delivery")
	}
	now := k.clock.Now()
	var out []bridge.LoginRecord
	seen := map[string]bool{}
	for _, ev := range hook.Data.Events {
		at, err := time.Parse(time.RFC3339Nano, ev.Published)
		switch {
		case err != nil,
			!slices.Contains(oktaLoginEvents, ev.EventType),
			// The sso event also fires on failed sign-ons.
			ev.Outcome.Result != "SUCCESS",
			ev.Actor.Type != "User",
			!validSubject(ev.Actor.ID),
			ev.EventType == "user.authentication.sso" && !k.appAllowed(ev),
			!fresh(at, now, k.cfg.MaxEventAge, k.cfg.Leeway):
			continue
		}
		// Okta delivers at least once; one delivery may repeat an event.
		if ev.UUID != "" {
			if seen[ev.UUID] {
				continue
			}
			seen[ev.UUID] = true
		}
		out = append(out, bridge.LoginRecord{
			Verified: false, // unsigned, and Okta's word only
			At:       at.UTC(),
			Identity: bridge.Identity{
				Provider:   k.cfg.Provider,
				Issuer:     k.cfg.Issuer,
				Subject:    ev.Actor.ID,
				Name:       boundedName(ev.Actor.DisplayName),
				VerifiedAt: at.UTC(),
			},
		})
	}
	return out, nil
}

// appAllowed: with app_instances configured, the sso event must target one.
func (k *okta) appAllowed(ev oktaEvent) bool {
	if len(k.cfg.AppInstances) == 0 {
		return true
	}
	for _, t := range ev.Target {
		if t.Type == "AppInstance" && slices.Contains(k.cfg.AppInstances, t.ID) {
			return true
		}
	}
	return false
}

// boundedName keeps a display name short and printable, or drops it.
func boundedName(s string) string {
	if len(s) > 256 || !validSubject(s) {
		return ""
	}
	return s
}
