package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRequestIDFromContext(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(&buf, "json", "info")
	ctx := WithRequestID(context.Background(), "req-123")
	log.With("brand", "acme").InfoContext(ctx, "login link issued")
	log.Info("no request")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	require.Len(t, lines, 2)
	var first, second map[string]any
	require.NoError(t, json.Unmarshal(lines[0], &first))
	require.NoError(t, json.Unmarshal(lines[1], &second))
	assert.Equal(t, "req-123", first["request_id"])
	assert.Equal(t, "acme", first["brand"])
	assert.NotContains(t, second, "request_id")
	assert.Equal(t, "", RequestID(context.Background()))
}
