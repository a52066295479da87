package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

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

// The id survives the contexts the service derives (timeouts, detached
// batches), and the carrier passes other keys and cancellation through.
func TestRequestIDThroughDerivedContexts(t *testing.T) {
	type otherKey struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), otherKey{}, "v"))
	ctx := WithRequestID(parent, "req-456")
	timed, stop := context.WithTimeout(ctx, time.Hour)
	defer stop()
	assert.Equal(t, "req-456", RequestID(timed))
	assert.Equal(t, "req-456", RequestID(context.WithoutCancel(timed)))
	assert.Equal(t, "v", timed.Value(otherKey{}))
	assert.Equal(t, "req-789", RequestID(WithRequestID(timed, "req-789")), "the innermost id wins")

	cancel()
	select {
	case <-timed.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the parent did not reach a context derived from the carrier")
	}
	assert.ErrorIs(t, timed.Err(), context.Canceled)
}
