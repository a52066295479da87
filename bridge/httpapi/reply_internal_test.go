package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// The hand-built webhook answer is byte for byte what gin's c.JSON wrote
// for the map it replaced (the documented answer).
func TestWebhookReplyBytes(t *testing.T) {
	for _, res := range []bridge.WebhookResult{{}, {Events: 1}, {Events: 3, Duplicates: 2}, {Events: 1 << 40, Duplicates: 7}} {
		want, err := json.Marshal(gin.H{"status": "ok", "events": res.Events, "duplicates": res.Duplicates})
		require.NoError(t, err)
		assert.Equal(t, string(want), string(webhookReply(nil, res)))
	}
}
