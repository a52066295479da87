package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServiceLogsCarryRequestID: the service's own log lines about a
// request carry the request id of the HTTP request, like the access log.
func TestServiceLogsCarryRequestID(t *testing.T) {
	h := newHarness(t, storeCases[0], harnessOptions{})
	conv, _ := h.newConversation()
	h.requestLink("acme", conv, false)
	var found bool
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if !strings.Contains(line, `"login link issued"`) {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m))
		id, _ := m["request_id"].(string)
		assert.NotEmpty(t, id, "service log line without request id: %s", line)
		assert.Contains(t, h.logs.String(), `"request_id":"`+id+`","method":"POST","route":"/api/v1/brands/:brand/conversations/:conversation/login-links"`, "the access log line of the same request")
		found = true
	}
	require.True(t, found, "no 'login link issued' line")
}
