package liveperson

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

const (
	sampleConv     = "5491244f-e462-4c63-bf4e-faf4b2d3e7b5"
	sampleConsumer = "ade26082b1185839d17e0794924c1a0005cf5663e7c35e38f80dd8552a1a96e5"
)

func TestParseSamples(t *testing.T) {
	tests := []struct {
		file string
		want []item
		skip string
	}{
		{file: "ms.MessagingEventNotification.ContentEvent.consumer-text.json", want: []item{{ev: bridge.Event{
			ID: "lp:ms:" + sampleConv + ":0", Kind: bridge.EventConsumerMessage, Conversation: sampleConv,
			Consumer: sampleConsumer, Channel: "messaging", Text: "Hello from Consumer", At: time.UnixMilli(1528371161893).UTC(),
		}}}},
		{file: "ms.MessagingEventNotification.ContentEvent.agent-text.json", want: []item{{ev: bridge.Event{
			ID: "lp:ms:" + sampleConv + ":2", Kind: bridge.EventAgentMessage, Conversation: sampleConv,
			Channel: "messaging", Text: "Hello from the Agent\n", At: time.UnixMilli(1528371199686).UTC(),
		}}}},
		{file: "ms.MessagingEventNotification.ContentEvent.with-messageAudience.json", want: []item{{ev: bridge.Event{
			ID: "lp:ms:4fe52a76-7316-45fe-acf3-482cfb621d9c:39", Kind: bridge.EventConsumerMessage, Conversation: "4fe52a76-7316-45fe-acf3-482cfb621d9c",
			Consumer: "adba3c0a-c1f5-4ca1-8062-07acde2b5eaf", Channel: "messaging",
			Text: "sender: Consumer message: 21\n can I get an unlimited data plan\n[16:00:56] timestamp:1641916856685", At: time.UnixMilli(1641916856713).UTC(),
		}}}},
		{file: "ms.MessagingEventNotification.AcceptStatusEvent.agent-read.json", skip: "receipt or typing state"},
		{file: "ms.MessagingEventNotification.ChatStateEvent.agent-composing.json", skip: "receipt or typing state"},
		{file: "ms.MessagingEventNotification.ChatStateEvent.consumer-pause.signed.json", skip: "receipt or typing state"},
		{file: "cqm.ExConversationChangeNotification.consumer-created.json", want: []item{{open: true, participants: true, ts: 1528371161882, ev: bridge.Event{
			ID: "lp:cqm:" + sampleConv + ":1528371161882", Kind: bridge.EventConversationStarted, Conversation: sampleConv,
			Consumer: sampleConsumer, Channel: "messaging", At: time.UnixMilli(1528371161882).UTC(),
		}}}},
		{file: "cqm.ExConversationChangeNotification.agent-assigned.json", want: []item{{open: true, participants: true, assigned: true, ts: 1528371195521, ev: bridge.Event{
			ID: "lp:cqm:" + sampleConv + ":1528371195521", Kind: bridge.EventConversationStarted, Conversation: sampleConv,
			Consumer: sampleConsumer, Channel: "messaging", At: time.UnixMilli(1528371195521).UTC(),
		}}}},
		{file: "cqm.ExConversationChangeNotification.closed-by-consumer.signed.json", want: []item{{participants: true, ts: 1545399379370, ev: bridge.Event{
			ID: "lp:cqm:b8b83fe9-75f0-46f2-baaa-2930f7192cfb:1545399379370", Kind: bridge.EventConversationClosed, Conversation: "b8b83fe9-75f0-46f2-baaa-2930f7192cfb",
			Consumer: "2969e404f3be1c8cdda63f0b72d205ab5afb3fe3e3d7d72ab58245f564fdfd91", Channel: "messaging", At: time.UnixMilli(1545399379370).UTC(),
		}}}},
		{file: "cqm.ExConversationChangeNotification.open-with-dialogs.json", want: []item{{open: true, participants: true, ts: 1544178732211, ev: bridge.Event{
			ID: "lp:cqm:69d7026e-67e7-47ab-8dcb-ec14dfcdd31d:1544178732211", Kind: bridge.EventConversationStarted, Conversation: "69d7026e-67e7-47ab-8dcb-ec14dfcdd31d",
			Consumer: "5c40c7731ad3f3d49a4a7cdd90e01dd33ab95446a7451884a76ab3079a757a5c", Channel: "messaging", At: time.UnixMilli(1544178732211).UTC(),
		}}}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			items, skips, err := parse(sample(t, tc.file))
			require.NoError(t, err)
			assert.Equal(t, tc.want, items)
			if tc.skip != "" {
				require.Len(t, skips, 1)
				assert.Equal(t, tc.skip, skips[0].reason)
			} else {
				assert.Empty(t, skips)
			}
		})
	}
}

func TestParseCases(t *testing.T) {
	msg := func(change string) string {
		return `{"kind":"notification","type":"ms.MessagingEventNotification","body":{"changes":[` + change + `]}}`
	}
	cqm := func(change string) string {
		return `{"kind":"notification","type":"cqm.ExConversationChangeNotification","body":{"changes":[` + change + `]}}`
	}
	consumerText := func(extra, text string) string {
		return `{"sequence":7,"originatorId":"c1","originatorMetadata":{"id":"c1","role":"CONSUMER"},"serverTimestamp":1700000000000,` +
			`"event":{"type":"ContentEvent","contentType":"text/plain","message":` + text + `},"conversationId":"conv-1","dialogId":"conv-1"` + extra + `}`
	}
	tests := []struct {
		name      string
		body      string
		wantKind  bridge.EventKind
		wantText  string
		wantSkip  string
		malformed string
	}{
		{name: "emoji and non-ASCII text", body: msg(consumerText("", `"123 456 👍 Grüße"`)), wantKind: bridge.EventConsumerMessage, wantText: "123 456 👍 Grüße"},
		{name: "escaped unicode", body: msg(consumerText("", `"\u00fc\ud83d\ude00"`)), wantKind: bridge.EventConsumerMessage, wantText: "ü😀"},
		{name: "agent-only message ignored", body: msg(consumerText(`,"messageAudience":"AGENTS_AND_MANAGERS"`, `"note"`)), wantSkip: "agent-only message"},
		{name: "other dialog ignored", body: msg(`{"sequence":1,"originatorMetadata":{"id":"c1","role":"CONSUMER"},"event":{"type":"ContentEvent","contentType":"text/plain","message":"5"},"conversationId":"conv-1","dialogId":"survey-1"}`), wantSkip: "other dialog (e.g. a survey), not the conversation's main dialog"},
		{name: "controller message ignored", body: msg(`{"sequence":1,"originatorMetadata":{"id":"b","role":"CONTROLLER"},"event":{"type":"ContentEvent","contentType":"text/plain","message":"hi"},"dialogId":"conv-1"}`), wantSkip: "message from a bot, system or unknown role"},
		{name: "rich content from consumer has no text", body: msg(`{"sequence":3,"originatorMetadata":{"id":"c1","role":"CONSUMER"},"event":{"type":"RichContentEvent","content":{"type":"vertical"}},"dialogId":"conv-1"}`), wantKind: bridge.EventConsumerMessage},
		{name: "hosted file has no text", body: msg(`{"sequence":4,"originatorMetadata":{"id":"c1","role":"CONSUMER"},"event":{"type":"ContentEvent","contentType":"hosted/file","message":{"relativePath":"x"}},"dialogId":"conv-1"}`), wantKind: bridge.EventConsumerMessage},
		{name: "live chat refused", body: cqm(`{"type":"UPSERT","result":{"convId":"c","conversationDetails":{"participants":[{"id":"p","role":"CONSUMER"}],"dialogs":[{"dialogId":"c","dialogType":"MAIN","channelType":"LIVE_CHAT"}],"state":"OPEN","metaDataLastUpdateTs":5}}}`), wantKind: bridge.EventRefused, wantText: RefusedNotMessaging},
		{name: "delete ignored", body: cqm(`{"type":"DELETE","result":{"convId":"c"}}`), wantSkip: "conversation left the subscription"},
		{name: "unknown notification type", body: `{"kind":"notification","type":"routing.RoutingTaskNotification","body":{"changes":[{}]}}`, wantSkip: "notification type not used by the bridge"},
		{name: "not JSON", body: `{"kind":`, malformed: "body: invalid JSON"},
		{name: "array body", body: `[]`, malformed: "body: must be a JSON object"},
		{name: "no body", body: `{"kind":"notification","type":"ms.MessagingEventNotification"}`, malformed: "body: required"},
		{name: "change not an object", body: msg(`"x"`), malformed: "body.changes[0]: must be an object"},
		{name: "content without sequence", body: msg(`{"originatorMetadata":{"id":"c1","role":"CONSUMER"},"event":{"type":"ContentEvent","contentType":"text/plain","message":"hi"},"dialogId":"conv-1"}`), malformed: "body.changes[0].sequence: required for content events"},
		{name: "no dialog", body: msg(`{"sequence":1,"event":{"type":"ContentEvent"}}`), malformed: "body.changes[0].dialogId: required"},
		{name: "text message not a string", body: msg(consumerText("", `{"a":1}`)), malformed: "body.changes[0].event.message: must be a string for text/plain"},
		{name: "sequence of wrong type", body: msg(`{"sequence":"7","dialogId":"conv-1"}`), malformed: "body.changes[0].sequence: must be a JSON number, not string"},
		{name: "control character in id", body: msg(`{"sequence":1,"dialogId":"a\u0000b","event":{"type":"ContentEvent"}}`), malformed: "body.changes[0].dialogId: contains control characters"},
		{name: "cqm without timestamp", body: cqm(`{"type":"UPSERT","result":{"convId":"c","conversationDetails":{"state":"OPEN"}}}`), malformed: "body.changes[0].result.conversationDetails.metaDataLastUpdateTs: required"},
		{name: "cqm bad change type", body: cqm(`{"type":"MERGE","result":{"convId":"c"}}`), malformed: "body.changes[0].type: must be UPSERT or DELETE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			items, skips, err := parse([]byte(tc.body))
			if tc.malformed != "" {
				require.ErrorIs(t, err, bridge.ErrMalformed)
				assert.Contains(t, err.Error(), tc.malformed)
				return
			}
			require.NoError(t, err)
			if tc.wantSkip != "" {
				assert.Empty(t, items)
				require.Len(t, skips, 1)
				assert.Equal(t, tc.wantSkip, skips[0].reason)
				return
			}
			require.Len(t, items, 1)
			assert.Equal(t, tc.wantKind, items[0].ev.Kind)
			assert.Equal(t, tc.wantText, items[0].ev.Text)
		})
	}
}
