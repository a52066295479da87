package liveperson

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	json "github.com/go-json-experiment/json/v1"

	"github.com/stepup-bridge/stepup-bridge/adapters/internal/inbound"
	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// Notification types and the event types inside them (reference
// liveperson.md §2.2, §2.3).
const (
	TypeMessaging    = "ms.MessagingEventNotification"
	TypeConversation = "cqm.ExConversationChangeNotification"

	EventContent      = "ContentEvent"
	EventRichContent  = "RichContentEvent"
	EventAcceptStatus = "AcceptStatusEvent"
	EventChatState    = "ChatStateEvent"
)

// Participant roles.
const (
	RoleConsumer      = "CONSUMER"
	RoleAssignedAgent = "ASSIGNED_AGENT"
	RoleAgent         = "AGENT"
	RoleManager       = "MANAGER"
)

// Message audiences: AGENTS_AND_MANAGERS is an agent-only message.
const (
	AudienceAll            = "ALL"
	AudienceAgentsManagers = "AGENTS_AND_MANAGERS"
)

// Conversation states, and the one channel step-up exists on.
const (
	StateOpen        = "OPEN"
	StateClose       = "CLOSE"
	ChannelMessaging = "MESSAGING"
)

const (
	channel                   = "messaging" // bridge.Session.Channel of every LivePerson conversation
	changeUpsert              = "UPSERT"
	changeDelete              = "DELETE"
	maxIDBytes                = 256
	maxTextRunes              = 4096
	contentTypeText           = "text/plain"
	eventIDPrefixMessaging    = "lp:ms:"
	eventIDPrefixConversation = "lp:cqm:"
)

// RefusedNotMessaging is the EventRefused reason of a conversation on
// another channel than messaging (live chat).
const RefusedNotMessaging = "not_messaging"

type envelope struct {
	Kind string `json:"kind"`
	Type string `json:"type"`
	Body *struct {
		Changes []json.RawMessage `json:"changes"`
	} `json:"body"`
}

type msChange struct {
	Sequence           *int64 `json:"sequence"`
	OriginatorID       string `json:"originatorId"`
	OriginatorMetadata *struct {
		ID   string `json:"id"`
		Role string `json:"role"`
	} `json:"originatorMetadata"`
	ServerTimestamp int64 `json:"serverTimestamp"`
	Event           *struct {
		Type        string          `json:"type"`
		ContentType string          `json:"contentType"`
		Message     json.RawMessage `json:"message"`
	} `json:"event"`
	ConversationID  string `json:"conversationId"`
	DialogID        string `json:"dialogId"`
	MessageAudience string `json:"messageAudience"`
}

type participant struct {
	ID   string `json:"id"`
	Role string `json:"role"`
}

type cqmChange struct {
	Type   string `json:"type"`
	Result *struct {
		ConvID              string `json:"convId"`
		ConversationDetails *struct {
			Participants []participant `json:"participants"`
			Dialogs      []struct {
				DialogID    string `json:"dialogId"`
				DialogType  string `json:"dialogType"`
				ChannelType string `json:"channelType"`
			} `json:"dialogs"`
			State                string `json:"state"`
			MetaDataLastUpdateTs int64  `json:"metaDataLastUpdateTs"`
		} `json:"conversationDetails"`
	} `json:"result"`
}

// item is one parsed change. An open-conversation change is resolved
// against the bridge's session by the adapter: it is an identity swap when
// the conversation's consumer changed.
type item struct {
	ev   bridge.Event
	open bool // cqm UPSERT of an OPEN messaging conversation
	// cqm changes carry the whole participant list: whether an agent is
	// assigned (a skill transfer must remove it), as of ts.
	participants bool
	assigned     bool
	ts           int64
}

// skipped says why a verified change gives no event; the adapter logs it.
type skipped struct {
	reason string
	conv   string
}

// parse turns a verified body into items, and the changes it ignores on
// purpose with the reason. Errors wrap bridge.ErrMalformed and name the
// JSON path at fault, never echoing input.
//
// A valid body is decoded in one pass (parseFast); anything else, and any
// body the fast path cannot be sure of, goes through parseSlow, the
// reference, which gives the result and the exact error.
func parse(body []byte) ([]item, []skipped, error) {
	if items, skips, ok := parseFast(body); ok {
		return items, skips, nil
	}
	return parseSlow(body)
}

// parseSlow is the reference parser: the envelope, then each change, then
// the message text, each in its own encoding/json pass.
func parseSlow(body []byte) ([]item, []skipped, error) {
	var env envelope
	if err := inbound.Unmarshal(body, &env); err != nil {
		return nil, nil, jsonError("", err)
	}
	if env.Body == nil {
		return nil, nil, malformed("body", "required")
	}
	var items []item
	var skips []skipped
	for i, raw := range env.Body.Changes {
		path := "body.changes[" + strconv.Itoa(i) + "]"
		var (
			it   *item
			skip string
			conv string
			err  error
		)
		switch env.Type {
		case TypeMessaging:
			it, conv, skip, err = parseMessaging(raw, path)
		case TypeConversation:
			it, conv, skip, err = parseConversation(raw, path)
		default:
			return nil, []skipped{{reason: "notification type not used by the bridge"}}, nil
		}
		if err != nil {
			return nil, nil, err
		}
		items, skips = collect(items, skips, it, conv, skip)
	}
	return items, skips, nil
}

// collect adds a change's item, or the reason it gave none.
func collect(items []item, skips []skipped, it *item, conv, skip string) ([]item, []skipped) {
	if it != nil {
		return append(items, *it), skips
	}
	return items, append(skips, skipped{reason: skip, conv: conv})
}

func parseMessaging(raw json.RawMessage, path string) (*item, string, string, error) {
	var c msChange
	if err := decodeObject(raw, &c, path); err != nil {
		return nil, "", "", err
	}
	return messagingItem(&c, path)
}

// messagingItem interprets a decoded messaging change; path is used in
// errors only.
func messagingItem(c *msChange, path string) (*item, string, string, error) {
	conv := c.ConversationID
	if conv == "" {
		conv = c.DialogID // older notifications: the main dialog's id is the conversation's
	}
	if err := checkID(path+".dialogId", conv, true); err != nil {
		return nil, "", "", err
	}
	if c.ConversationID != "" && c.DialogID != "" && c.DialogID != c.ConversationID {
		return nil, conv, "other dialog (e.g. a survey), not the conversation's main dialog", nil
	}
	if c.MessageAudience == AudienceAgentsManagers {
		// Agent-only messages, the bridge's own notes among them.
		return nil, conv, "agent-only message", nil
	}
	if c.Event == nil {
		return nil, "", "", malformed(path+".event", "required")
	}
	switch c.Event.Type {
	case EventContent, EventRichContent:
	case EventAcceptStatus, EventChatState:
		return nil, conv, "receipt or typing state", nil
	default:
		return nil, conv, "event type not used by the bridge", nil
	}
	if c.Sequence == nil || *c.Sequence < 0 {
		return nil, "", "", malformed(path+".sequence", "required for content events")
	}
	role, origin := "", c.OriginatorID
	if c.OriginatorMetadata != nil {
		role = c.OriginatorMetadata.Role
		if origin == "" {
			origin = c.OriginatorMetadata.ID
		}
	}
	if err := checkID(path+".originatorId", origin, false); err != nil {
		return nil, "", "", err
	}
	ev := bridge.Event{
		ID:           eventIDPrefixMessaging + conv + ":" + strconv.FormatInt(*c.Sequence, 10),
		Conversation: conv,
		Channel:      channel,
		At:           millis(c.ServerTimestamp),
	}
	if c.Event.Type == EventContent && c.Event.ContentType == contentTypeText {
		var text string
		if err := inbound.Unmarshal(c.Event.Message, &text); err != nil {
			return nil, "", "", malformed(path+".event.message", "must be a string for text/plain")
		}
		if utf8.RuneCountInString(text) <= maxTextRunes {
			ev.Text = text // longer text is neither a code nor a command
		}
	}
	switch role {
	case RoleConsumer:
		ev.Kind = bridge.EventConsumerMessage
		ev.Consumer = origin
	case RoleAssignedAgent, RoleAgent, RoleManager:
		ev.Kind = bridge.EventAgentMessage
	default:
		return nil, conv, "message from a bot, system or unknown role", nil
	}
	return &item{ev: ev}, conv, "", nil
}

func parseConversation(raw json.RawMessage, path string) (*item, string, string, error) {
	var c cqmChange
	if err := decodeObject(raw, &c, path); err != nil {
		return nil, "", "", err
	}
	return conversationItem(&c, path)
}

// conversationItem interprets a decoded conversation change; path is used
// in errors only.
func conversationItem(c *cqmChange, path string) (*item, string, string, error) {
	if c.Result == nil {
		return nil, "", "", malformed(path+".result", "required")
	}
	conv := c.Result.ConvID
	if err := checkID(path+".result.convId", conv, true); err != nil {
		return nil, "", "", err
	}
	switch c.Type {
	case changeUpsert:
	case changeDelete:
		return nil, conv, "conversation left the subscription", nil
	default:
		return nil, "", "", malformed(path+".type", "must be UPSERT or DELETE")
	}
	d := c.Result.ConversationDetails
	if d == nil {
		return nil, "", "", malformed(path+".result.conversationDetails", "required")
	}
	if d.MetaDataLastUpdateTs <= 0 {
		return nil, "", "", malformed(path+".result.conversationDetails.metaDataLastUpdateTs", "required")
	}
	ev := bridge.Event{
		ID:           eventIDPrefixConversation + conv + ":" + strconv.FormatInt(d.MetaDataLastUpdateTs, 10),
		Conversation: conv,
		Channel:      channel,
		At:           millis(d.MetaDataLastUpdateTs),
	}
	for _, dl := range d.Dialogs {
		if (dl.DialogType == "MAIN" || dl.DialogID == conv) && dl.ChannelType != "" && dl.ChannelType != ChannelMessaging {
			// Step-up is for messaging only, as in LivePerson: refused,
			// acknowledged (or LivePerson retries for days) and counted.
			ev.Kind, ev.Text, ev.Channel = bridge.EventRefused, RefusedNotMessaging, strings.ToLower(safe(dl.ChannelType))
			return &item{ev: ev}, conv, "", nil
		}
	}
	assigned := false
	for i, p := range d.Participants {
		switch {
		case p.Role == RoleConsumer && ev.Consumer == "":
			if err := checkID(fmt.Sprintf("%s.result.conversationDetails.participants[%d].id", path, i), p.ID, true); err != nil {
				return nil, "", "", err
			}
			ev.Consumer = p.ID
		case p.Role == RoleAssignedAgent:
			assigned = true
		}
	}
	switch d.State {
	case StateClose:
		ev.Kind = bridge.EventConversationClosed
		return &item{ev: ev, participants: true, ts: d.MetaDataLastUpdateTs}, conv, "", nil
	case StateOpen:
		ev.Kind = bridge.EventConversationStarted
		return &item{ev: ev, open: ev.Consumer != "", participants: true, assigned: assigned, ts: d.MetaDataLastUpdateTs}, conv, "", nil
	}
	return nil, conv, "conversation state not used by the bridge", nil
}

func millis(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func decodeObject(raw json.RawMessage, v any, path string) error {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return malformed(path, "must be an object")
	}
	if err := inbound.Unmarshal(raw, v); err != nil {
		return jsonError(path+".", err)
	}
	return nil
}

// safe keeps a platform value short and printable for a log line.
func safe(v string) string {
	if len(v) > 32 {
		v = v[:32]
	}
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return -1
	}, v)
}

// malformed builds an error wrapping bridge.ErrMalformed that names the
// JSON path at fault.
var malformed = inbound.Malformed

// jsonError names the JSON path and the problem, never echoing input.
var jsonError = inbound.JSONError

func checkID(path, v string, required bool) error {
	return inbound.CheckID(path, v, required, maxIDBytes)
}
