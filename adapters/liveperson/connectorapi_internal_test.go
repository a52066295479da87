package liveperson

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// TestSendBodiesMatchSamples: the SEND bodies the bridge builds are the
// documented ones, compared with LivePerson's samples.
func TestSendBodiesMatchSamples(t *testing.T) {
	t.Run("ms.PublishEvent text", func(t *testing.T) {
		// The same PublishEvent body the agent side sends.
		got, err := json.Marshal(sendRequest{Kind: "req", ID: "1", Type: "ms.PublishEvent",
			Body: textEvent("{conversationId}", "Hi from Send Message only - Send a line")})
		require.NoError(t, err)
		assert.JSONEq(t, string(sample(t, "connector-api.send.request-text.json")), string(got))
	})
	t.Run("userprofile.SetUserProfile", func(t *testing.T) {
		var batch []json.RawMessage
		require.NoError(t, json.Unmarshal(sample(t, "connector-api.conversation.request-with-sdes.json"), &batch))
		var want map[string]any
		require.NoError(t, json.Unmarshal(batch[0], &want))
		// The sample's SDEs, from an identity; the bridge always adds
		// ctmrinfo.customerId (the subject) and puts ids as strings.
		want["id"] = "1"
		sdes := want["body"].(map[string]any)["authenticatedData"].(map[string]any)["lp_sdes"].([]any)
		sdes[0].(map[string]any)["info"].(map[string]any)["customerId"] = "user-42"

		id := &bridge.Identity{Subject: "user-42", VerifiedAt: time.Now(), Claims: map[string]string{"given_name": "John", "family_name": "Doe", "gender": "MALE"}}
		body := map[string]any{"authenticatedData": map[string]any{"lp_sdes": lpSDEs(id,
			map[string]string{"personal.firstname": "given_name", "personal.lastname": "family_name", "personal.gender": "gender"},
			map[string]json.RawMessage{"socialId": json.RawMessage(`"1234567890"`), "ctype": json.RawMessage(`"vip"`)})}}
		got, err := json.Marshal(sendRequest{Kind: "req", ID: "1", Type: SendSetUserProfile, Body: body})
		require.NoError(t, err)
		wantJSON, _ := json.Marshal(want)
		assert.JSONEq(t, string(wantJSON), string(got))
	})
}

func TestJWTTime(t *testing.T) {
	// sentinel.app-token.response.json's token: exp 1524646270.
	var resp struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.Unmarshal(sample(t, "sentinel.app-token.response.json"), &resp))
	exp, ok := jwtTime(resp.AccessToken, "exp")
	require.True(t, ok)
	assert.Equal(t, int64(1524646270), exp.Unix())
	for _, bad := range []string{"", "a.b", "a.!!!.c", "a." + strings.Repeat("x", 8) + ".c", resp.AccessToken + ".d"} {
		_, ok := jwtTime(bad, "exp")
		assert.False(t, ok, bad)
	}
}
