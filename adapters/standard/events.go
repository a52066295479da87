package standard

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	json "github.com/go-json-experiment/json/v1"

	"github.com/stepup-bridge/stepup-bridge/adapters/internal/inbound"
	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// Inbound event types (platform → bridge). Other types are ignored.
const (
	TypeConversationStarted = "conversation.started"
	TypeMessageCreated      = "message.created"
	TypeConversationClosed  = "conversation.closed"
)

// Outbound event types (bridge → brand endpoint), one per bridge.Effect.
const (
	TypeMessagePost    = "stepup.message.post"
	TypeIdentityAttach = "stepup.identity.attach"
	TypeAgentsNotify   = "stepup.agents.notify"
	TypeSkillRoute     = "stepup.skill.route"
)

// Author roles of message.created. Only consumer and agent messages become
// events; bot, system and any other role are ignored.
const (
	RoleConsumer = "consumer"
	RoleAgent    = "agent"
	RoleBot      = "bot"
	RoleSystem   = "system"
)

// Audiences of outbound messages.
const (
	AudienceConsumer = "consumer"
	AudienceAgents   = "agents"
)

// Bounds on inbound strings.
const (
	MaxIDBytes   = 256  // ids, channel and webhook-id
	MaxTextRunes = 4096 // message text, in Unicode code points
)

// inEnvelope is the Standard Webhooks payload structure, decoded with its
// data in one pass. Unknown top-level keys are ignored.
type inEnvelope struct {
	Type      *string `json:"type"`
	Timestamp *string `json:"timestamp"`
	Data      *inData `json:"data"`
}

// inHead is the envelope without its data. (Not embedded in inEnvelope:
// encoding/json would put "inHead." in the error paths.)
type inHead struct {
	Type      *string `json:"type"`
	Timestamp *string `json:"timestamp"`
}

// inData is the data of every inbound type; each type uses its fields.
// Unknown keys are ignored.
type inData struct {
	ConversationID string    `json:"conversation_id"`
	ConsumerID     string    `json:"consumer_id"`
	Channel        string    `json:"channel"`
	Author         *inAuthor `json:"author"`
	Text           string    `json:"text"`
}

type inAuthor struct {
	Role *string `json:"role"`
	ID   string  `json:"id"`
}

// malformed builds an error wrapping bridge.ErrMalformed that names the
// JSON path at fault.
var malformed = inbound.Malformed

// jsonError names the JSON path and the problem, never echoing input.
var jsonError = inbound.JSONError

func checkID(path, v string, required bool) error {
	return inbound.CheckID(path, v, required, MaxIDBytes)
}

// underData reports whether a wrong-type error's field path is data or
// inside it. The path spells each key as the body did: "Data" matches the
// data field, case-insensitively, as in encoding/json.
func underData(field string) bool {
	first, _, _ := strings.Cut(field, ".")
	return strings.EqualFold(first, "data")
}

// ours reports whether the bridge uses events of type typ.
func ours(typ string) bool {
	switch typ {
	case TypeConversationStarted, TypeMessageCreated, TypeConversationClosed:
		return true
	}
	return false
}

// parseEvent turns a verified body into zero or one event. fallbackAt (the
// webhook-timestamp) is used when the payload has no timestamp.
func parseEvent(id string, body []byte, fallbackAt time.Time) ([]bridge.Event, error) {
	if err := checkID("webhook-id", id, true); err != nil {
		return nil, err
	}
	// One pass decodes the body, data included. encoding/json goes on after
	// a value of the wrong JSON type and returns the first such error at the
	// end, with everything else decoded.
	var env inEnvelope
	err := inbound.Unmarshal(body, &env)
	var dataErr *json.UnmarshalTypeError // a wrong type at data or in it
	if err != nil {
		if !errors.As(err, &dataErr) || !underData(dataErr.Field) {
			return nil, jsonError("", err) // invalid JSON, a body not an object, a wrong type or timestamp
		}
		// Data matters only for our types, and a wrong type in type or
		// timestamp takes precedence, though after data it went unreported.
		// Such a value leaves its pointer at "": a type not ours with a
		// timestamp absent, null or not "" had none (short of duplicate
		// keys), so it is ignored at once. Otherwise decode them alone.
		if env.Type != nil && *env.Type != "" && !ours(*env.Type) && (env.Timestamp == nil || *env.Timestamp != "") {
			return nil, nil
		}
		var head inHead
		if err := inbound.Unmarshal(body, &head); err != nil {
			return nil, jsonError("", err)
		}
		env.Type, env.Timestamp = head.Type, head.Timestamp
	}
	if env.Type == nil || *env.Type == "" {
		return nil, malformed("type", "required")
	}
	if !ours(*env.Type) {
		return nil, nil // brands may send more than we use, whatever its data
	}
	at := fallbackAt.UTC()
	if env.Timestamp != nil {
		t, err := time.Parse(time.RFC3339Nano, *env.Timestamp)
		if err != nil {
			return nil, malformed("timestamp", "not an RFC 3339 date-time")
		}
		at = t.UTC()
	}
	switch {
	case dataErr != nil && strings.EqualFold(dataErr.Field, "data"):
		return nil, malformed("data", "must be an object") // an array, string, number or boolean
	case dataErr != nil:
		return nil, jsonError("", dataErr) // names the full path: data.author.role
	case env.Data == nil:
		return nil, malformed("data", "required") // absent or null
	}
	d := env.Data
	if err := checkID("data.conversation_id", d.ConversationID, true); err != nil {
		return nil, err
	}
	if err := checkID("data.consumer_id", d.ConsumerID, false); err != nil {
		return nil, err
	}
	if err := checkID("data.channel", d.Channel, false); err != nil {
		return nil, err
	}
	ev := bridge.Event{
		ID:           id,
		Conversation: d.ConversationID,
		Consumer:     d.ConsumerID,
		Channel:      d.Channel,
		At:           at,
	}
	switch *env.Type {
	case TypeConversationStarted:
		ev.Kind = bridge.EventConversationStarted
	case TypeConversationClosed:
		ev.Kind = bridge.EventConversationClosed
	case TypeMessageCreated:
		if d.Author == nil {
			return nil, malformed("data.author", "required")
		}
		if d.Author.Role == nil || *d.Author.Role == "" {
			return nil, malformed("data.author.role", "required")
		}
		if err := checkID("data.author.id", d.Author.ID, false); err != nil {
			return nil, err
		}
		if n := utf8.RuneCountInString(d.Text); n > MaxTextRunes {
			return nil, malformed("data.text", "%d characters, at most %d allowed", n, MaxTextRunes)
		}
		switch *d.Author.Role {
		case RoleConsumer:
			ev.Kind = bridge.EventConsumerMessage
		case RoleAgent:
			ev.Kind = bridge.EventAgentMessage
		default:
			return nil, nil // bot, system, others: nothing for the bridge
		}
		ev.Text = d.Text
	}
	return []bridge.Event{ev}, nil
}

// Outbound payloads: the documented shapes (README.md).

type outEnvelope struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      any    `json:"data"`
}

type outMessagePost struct {
	ConversationID string `json:"conversation_id"`
	ConsumerID     string `json:"consumer_id,omitempty"`
	Text           string `json:"text"`
	Audience       string `json:"audience"`
}

type outIdentityAttach struct {
	ConversationID string      `json:"conversation_id"`
	ConsumerID     string      `json:"consumer_id,omitempty"`
	Identity       outIdentity `json:"identity"`
}

type outAgentsNotify struct {
	ConversationID string       `json:"conversation_id"`
	ConsumerID     string       `json:"consumer_id,omitempty"`
	Text           string       `json:"text"`
	Audience       string       `json:"audience"`
	Identity       *outIdentity `json:"identity,omitempty"`
}

type outSkillRoute struct {
	ConversationID string `json:"conversation_id"`
	ConsumerID     string `json:"consumer_id,omitempty"`
	Skill          string `json:"skill"`
}

// outIdentity always carries every key: empty strings, [] and {} rather
// than absent keys, null only for an unknown auth_time.
type outIdentity struct {
	Provider      string            `json:"provider"`
	Issuer        string            `json:"issuer"`
	Subject       string            `json:"subject"`
	Name          string            `json:"name"`
	Email         string            `json:"email"`
	EmailVerified bool              `json:"email_verified"`
	AMR           []string          `json:"amr"`
	ACR           string            `json:"acr"`
	AuthTime      *string           `json:"auth_time"`
	VerifiedAt    string            `json:"verified_at"`
	Claims        map[string]string `json:"claims"`
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func identityOf(i *bridge.Identity) (*outIdentity, error) {
	if i == nil {
		return nil, nil
	}
	if i.Issuer == "" || i.Subject == "" {
		return nil, errors.New("identity without issuer or subject")
	}
	o := &outIdentity{
		Provider:      i.Provider,
		Issuer:        i.Issuer,
		Subject:       i.Subject,
		Name:          i.Name,
		Email:         i.Email,
		EmailVerified: i.EmailVerified,
		AMR:           append([]string{}, i.AMR...),
		ACR:           i.ACR,
		VerifiedAt:    formatTime(i.VerifiedAt),
		Claims:        map[string]string{},
	}
	for k, v := range i.Claims {
		o.Claims[k] = v
	}
	if !i.AuthTime.IsZero() {
		s := formatTime(i.AuthTime)
		o.AuthTime = &s
	}
	return o, nil
}

// buildBody renders the outbound payload of an entry. Its bytes depend on
// the entry only, so every delivery of an entry carries the same body; only
// webhook-timestamp and webhook-signature change between attempts. Errors
// are about the entry itself: retrying cannot fix them.
func buildBody(e bridge.OutboxEntry, now time.Time) ([]byte, error) {
	if e.Key.Conversation == "" {
		return nil, errors.New("entry without conversation")
	}
	at := e.CreatedAt
	if at.IsZero() {
		at = now
	}
	env := outEnvelope{Timestamp: formatTime(at)}
	switch e.Effect {
	case bridge.EffectPostMessage:
		if e.Text == "" {
			return nil, errors.New("post_message entry without text")
		}
		env.Type = TypeMessagePost
		env.Data = outMessagePost{ConversationID: e.Key.Conversation, ConsumerID: e.Consumer, Text: e.Text, Audience: AudienceConsumer}
	case bridge.EffectAttachIdentity:
		id, err := identityOf(e.Identity)
		if err != nil {
			return nil, err
		}
		if id == nil {
			return nil, errors.New("attach_identity entry without identity")
		}
		env.Type = TypeIdentityAttach
		env.Data = outIdentityAttach{ConversationID: e.Key.Conversation, ConsumerID: e.Consumer, Identity: *id}
	case bridge.EffectNotifyAgents:
		if e.Text == "" {
			return nil, errors.New("notify_agents entry without text")
		}
		id, err := identityOf(e.Identity)
		if err != nil {
			return nil, err
		}
		env.Type = TypeAgentsNotify
		env.Data = outAgentsNotify{ConversationID: e.Key.Conversation, ConsumerID: e.Consumer, Text: e.Text, Audience: AudienceAgents, Identity: id}
	case bridge.EffectRouteSkill:
		if e.Text == "" {
			return nil, errors.New("route_skill entry without skill")
		}
		env.Type = TypeSkillRoute
		env.Data = outSkillRoute{ConversationID: e.Key.Conversation, ConsumerID: e.Consumer, Skill: e.Text}
	default:
		return nil, fmt.Errorf("unsupported effect %q", e.Effect)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(env); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
