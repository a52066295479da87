package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// The outbox CLI against a real Redis runs in the durability tier
// (cmd/stepup-bridge/internal/durability); these are its fast checks.

func TestOutboxFlags(t *testing.T) {
	t.Setenv("STEPUP_CONFIG", "")
	var stderr bytes.Buffer
	o, err := parseOutboxFlags("replay", []string{"1:1-0", "--config", "c.yaml", "2:2-0", "--json"}, &stderr)
	require.NoError(t, err)
	assert.Equal(t, []string{"1:1-0", "2:2-0"}, o.ids, "flags between and after IDs")
	assert.Equal(t, "c.yaml", o.config)
	assert.True(t, o.json)

	_, err = parseOutboxFlags("drop", []string{"--all", "--config", "c.yaml"}, &stderr)
	require.Error(t, err, "drop has no --all")
	_, err = parseOutboxFlags("list", []string{"--json"}, &stderr)
	require.ErrorContains(t, err, "--config")
}

func TestOutboxCommandChecks(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "memory.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("server:\n  public_url: http://127.0.0.1:8080\nstore:\n  driver: memory\nbrands: []\n"), 0o600))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"outbox"}, "needs a subcommand"},
		{[]string{"outbox", "purge"}, `unknown outbox subcommand "purge"`},
		{[]string{"outbox", "replay", "--config", cfg}, "needs dead letter IDs or --all"},
		{[]string{"outbox", "replay", "--all", "1:1-0", "--config", cfg}, "needs dead letter IDs or --all (not both)"},
		{[]string{"outbox", "drop", "--config", cfg}, "needs dead letter IDs"},
		{[]string{"outbox", "list", "1:1-0", "--config", cfg}, "takes no IDs"},
		{[]string{"outbox", "list", "--config", cfg}, "live inside the serving process"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, &stdout, &stderr)
		require.Error(t, err, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.want, "%v", tc.args)
	}
}

// A dead letter's view carries what an operator decides with, never the
// text (a login link is a secret) or the identity (personal data).
func TestDeadLetterViewHidesContent(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	d := redisstore.DeadLetter{
		ID: "7:1764158400000-0",
		Entry: bridge.OutboxEntry{
			ID: "entry-1", Effect: bridge.EffectPostMessage, Key: bridge.Key{Brand: "acme", Conversation: "c-42"}, Platform: "standard",
			Consumer: "consumer-secret-id", Text: "Please verify: https://bridge.example/login/acme/TICKET-SECRET",
			Identity:  &bridge.Identity{Subject: "u-1", Email: "jane@example.com", Name: "Jane"},
			CreatedAt: now.Add(-3 * time.Hour),
		},
		Attempts: 110, Reason: "outbound POST https://platform.example/events: status 503", At: now.Add(-time.Minute),
	}
	b, err := json.Marshal(viewOf(d, now))
	require.NoError(t, err)
	for _, secret := range []string{"TICKET-SECRET", "/login/", "jane@example.com", "Jane", "consumer-secret-id", "u-1"} {
		assert.NotContains(t, string(b), secret)
	}
	var v map[string]any
	require.NoError(t, json.Unmarshal(b, &v))
	assert.Equal(t, "c-42", v["conversation"])
	assert.Equal(t, "post_message", v["effect"])
	assert.EqualValues(t, 110, v["attempts"])
	assert.EqualValues(t, 3*3600, v["age_seconds"])
}

func TestAgeAndPrintable(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "-", 42 * time.Second: "42s", 7 * time.Minute: "7m", 3*time.Hour + 12*time.Minute: "3h12m", 52 * time.Hour: "2d4h",
	} {
		assert.Equal(t, want, age(d))
	}
	assert.Equal(t, "a b", printable("a\nb", 10))
	assert.Equal(t, "abcd…", printable("abcdefgh", 5))
	assert.Equal(t, "-", printable("", 5))
}

// With the memory store, shutdown says what is lost.
func TestMemoryStoreReportsUndeliveredAtShutdown(t *testing.T) {
	cfg, err := config.Parse([]byte("server:\n  public_url: http://127.0.0.1:8080\nstore:\n  driver: memory\nbrands: []\n"), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	var logs bytes.Buffer
	a, err := build(context.Background(), cfg, slog.New(slog.NewJSONHandler(&logs, nil)), buildOptions{})
	require.NoError(t, err)
	defer a.Close()
	a.reportUndelivered()
	assert.NotContains(t, logs.String(), "outbox entries are lost", "nothing to lose")

	key := bridge.Key{Brand: "acme", Conversation: "c-1"}
	obs := bridge.Observation{Key: key, Platform: "standard", At: time.Now()}
	_, err = a.Store.IssueTicket(context.Background(), bridge.IssueTicket{Obs: &obs, Key: key, TicketHash: bridge.NewToken(key).Hash(), Now: time.Now(), ExpiresAt: time.Now().Add(time.Minute),
		Outbox: []bridge.OutboxEntry{{ID: "e1", Effect: bridge.EffectPostMessage, Key: key, Platform: "standard", Text: "link", CreatedAt: time.Now()}}})
	require.NoError(t, err)
	a.reportUndelivered()
	assert.Contains(t, logs.String(), "outbox entries are lost with this process")
	assert.Contains(t, logs.String(), `"undelivered":1`)
}
