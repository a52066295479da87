package durability

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A platform that answers 503, then hangs, then accepts calls whose answers
// are lost, then recovers: every effect is delivered, once per idempotency
// key, and nothing is dead-lettered.
func TestPlatformOutageThenRecovery(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	convs := conversations("outage", 20)

	e.proxy.setMode("unavailable")
	s := e.sender()
	require.NoError(t, <-s.burst(ctx, convs, 0), "webhooks are acknowledged after the durable write, platform down or not")
	eventually(t, 30*time.Second, "an attempt per entry against the 503s", func() bool { return e.proxy.count("unavailable") >= len(convs) })

	e.proxy.setMode("hang")
	eventually(t, 30*time.Second, "attempts timing out", func() bool { return e.proxy.count("hang") >= 8 })

	e.proxy.setMode("lost")
	eventually(t, 30*time.Second, "calls accepted whose answers are lost", func() bool { return e.proxy.lostIDs() >= 3 })

	e.proxy.setMode("pass")
	e.waitDelivered(convs, 60*time.Second)
	// Drained: every entry acknowledged, the lost answers' entries too.
	e.requireDrained()
	e.requireExactlyOnce(convs)
	// The calls whose answers were lost were sent again after the platform
	// had accepted them; it recognised their webhook-id.
	assert.GreaterOrEqual(t, e.platform.Duplicates(), e.proxy.lostIDs())
	t.Logf("%d effects; platform saw %d 503s, %d timeouts, %d lost answers (%d entries), %d requests; %d duplicate deliveries absorbed by the idempotency key",
		len(convs), e.proxy.count("unavailable"), e.proxy.count("hang"), e.proxy.count("lost"), e.proxy.lostIDs(), e.platform.Requests(), e.platform.Duplicates())
}

// The bridge is killed (SIGKILL) in the middle of a burst, while webhooks
// are arriving and calls are in flight, then started again: every
// acknowledged event's effect is delivered, none twice.
func TestBridgeKilledMidBurst(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	convs := conversations("kill", 80)
	// Latency between the platform's acceptance and the bridge hearing of
	// it: a kill then lands between a delivered call and its Ack.
	e.proxy.delay.Store(int64(250 * time.Millisecond))

	s := e.sender()
	// 50 step-ups a second: the kill lands while webhooks still arrive.
	done := s.burst(ctx, convs, 20*time.Millisecond)
	eventually(t, 60*time.Second, "a burst under way", func() bool { return s.acked() >= 25 && len(e.linkPosts()) >= 3 })
	e.kill()
	delivered, acked := len(e.linkPosts()), s.acked()
	require.Less(t, acked, len(convs), "killed after the burst ended: the test tests nothing")
	require.Less(t, delivered, acked, "killed after the outbox drained: the test tests nothing")
	t.Logf("killed with %d of %d events acknowledged and %d effects delivered", acked, len(convs), delivered)

	time.Sleep(500 * time.Millisecond) // the platform's webhooks fail meanwhile; it retries them
	e.start()
	require.NoError(t, <-done)
	// The dead process' leased entries come back after claim_idle (3s).
	e.waitDelivered(convs, 90*time.Second)
	e.requireDrained()
	e.requireExactlyOnce(convs)
	t.Logf("%d effects exactly once; %d redeliveries absorbed by the idempotency key; platform saw %d requests",
		len(convs), e.platform.Duplicates(), e.platform.Requests())
}

// The bridge is stopped (SIGTERM, as in a deploy) in the middle of a
// burst: calls in flight finish and are settled, claimed entries not yet
// attempted are handed back, so after a restart every effect is delivered
// and not a single call is repeated.
func TestBridgeStoppedMidBurst(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	convs := conversations("stop", 60)
	e.proxy.delay.Store(int64(250 * time.Millisecond))

	s := e.sender()
	done := s.burst(ctx, convs, 20*time.Millisecond)
	eventually(t, 60*time.Second, "a burst under way", func() bool { return s.acked() >= 20 && len(e.linkPosts()) >= 3 })
	require.Zero(t, e.stop(), "exit code after SIGTERM")
	delivered, acked := len(e.linkPosts()), s.acked()
	require.Less(t, delivered, acked, "stopped after the outbox drained: the test tests nothing")
	t.Logf("stopped with %d of %d events acknowledged and %d effects delivered", acked, len(convs), delivered)

	e.start()
	require.NoError(t, <-done)
	e.waitDelivered(convs, 90*time.Second)
	e.requireDrained()
	e.requireExactlyOnce(convs)
	assert.Zero(t, e.platform.Duplicates(), "a graceful stop repeats no call")
	t.Logf("%d effects exactly once; %d requests", len(convs), e.platform.Requests())
}

// Redis is killed (SIGKILL) in the middle of a burst and restarted from
// its append-only file: webhooks during the outage get 503 (never 2xx, so
// the platform retries them), and nothing acknowledged is lost.
func TestRedisRestartedMidBurst(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	convs := conversations("redis", 60)
	e.proxy.delay.Store(int64(20 * time.Millisecond))

	s := e.sender()
	done := s.burst(ctx, convs, 20*time.Millisecond)
	eventually(t, 60*time.Second, "a burst under way", func() bool { return s.acked() >= 20 })
	e.redis.kill()
	down := time.Now()
	// Long enough for several webhook retries to meet the outage.
	time.Sleep(1500 * time.Millisecond)
	up := time.Now()
	e.redis.restart()

	require.NoError(t, <-done)
	e.waitDelivered(convs, 90*time.Second)
	e.requireDrained()
	e.requireExactlyOnce(convs)

	during := 0
	for _, a := range s.attempts() {
		if a.start.After(down) && a.end.Before(up) {
			during++
			assert.Equal(t, http.StatusServiceUnavailable, a.status, "a webhook during the Redis outage")
		}
	}
	require.Positive(t, during, "no webhook met the outage: the test tests nothing")
	t.Logf("%d webhooks answered 503 during the outage; %d effects exactly once; %d redeliveries absorbed by the idempotency key",
		during, len(convs), e.platform.Duplicates())
}

// deadLetter is one entry of outbox list --json.
type deadLetter struct {
	ID           string    `json:"id"`
	EntryID      string    `json:"entry_id"`
	Effect       string    `json:"effect"`
	Brand        string    `json:"brand"`
	Platform     string    `json:"platform"`
	Conversation string    `json:"conversation"`
	Attempts     int       `json:"attempts"`
	Reason       string    `json:"reason"`
	CreatedAt    time.Time `json:"created_at"`
	BuriedAt     time.Time `json:"buried_at"`
}

// A permanent 4xx goes to the dead letters at the first attempt (no retry
// storm); the CLI lists them without secrets, replays them (delivered
// then, once) and drops them.
func TestPermanentRejectionDeadLettersAndReplay(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	convs := conversations("reject", 5)

	e.platform.FailNext(len(convs), http.StatusUnprocessableEntity)
	s := e.sender()
	require.NoError(t, <-s.burst(ctx, convs, 0))
	eventually(t, 30*time.Second, "dead letters", func() bool { return e.stats().DeadLetters == int64(len(convs)) })
	require.Equal(t, len(convs), e.platform.Requests(), "one attempt per entry, none repeated")
	assert.Equal(t, float64(len(convs)), e.metric(`stepup_outbox_deliveries_total{brand="acme",effect="post_message",outcome="dead_letter",platform="standard"}`))
	assert.Equal(t, float64(len(convs)), e.metric(`stepup_outbox_delivery_attempts_count{brand="acme",effect="post_message",outcome="dead_letter",platform="standard"}`))
	assert.Equal(t, float64(len(convs)), e.metric(`stepup_outbox_delivery_attempts_sum{brand="acme",effect="post_message",outcome="dead_letter",platform="standard"}`), "one attempt each")
	// The gauges follow the store (refreshed every 15s).
	eventually(t, 40*time.Second, "stepup_outbox_dead_letters 5", func() bool { return e.metric("stepup_outbox_dead_letters") == float64(len(convs)) })

	// list --json: what an operator needs, and no link (a secret) or text.
	out, errOut, err := e.cli("list", "--json")
	require.NoError(t, err, errOut)
	assert.NotContains(t, out, "/login/", "the login link is a secret")
	assert.NotContains(t, out, "verify your identity", "message text is not listed")
	var listed struct {
		DeadLetters []deadLetter `json:"dead_letters"`
		Total       int          `json:"total"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &listed), out)
	require.Len(t, listed.DeadLetters, len(convs))
	assert.Equal(t, len(convs), listed.Total)
	seen := map[string]bool{}
	for _, d := range listed.DeadLetters {
		seen[d.Conversation] = true
		assert.Equal(t, "post_message", d.Effect)
		assert.Equal(t, "acme", d.Brand)
		assert.Equal(t, "standard", d.Platform)
		assert.Equal(t, 1, d.Attempts)
		assert.Contains(t, d.Reason, "422")
		assert.NotEmpty(t, d.EntryID)
		assert.False(t, d.CreatedAt.IsZero())
		assert.False(t, d.BuriedAt.IsZero())
	}
	for _, c := range convs {
		assert.True(t, seen[c], "dead letter for %s", c)
	}

	// The table for people.
	out, errOut, err = e.cli("list")
	require.NoError(t, err, errOut)
	assert.Contains(t, out, "ID")
	assert.Contains(t, out, "ATTEMPTS")
	assert.Contains(t, out, listed.DeadLetters[0].ID)
	assert.Contains(t, out, "5 dead letter(s)")
	assert.NotContains(t, out, "/login/")
	out, errOut, err = e.cli("list", "--limit", "2")
	require.NoError(t, err, errOut)
	assert.Contains(t, out, "showing the oldest 2 of 5 dead letters")
	assert.Contains(t, out, listed.DeadLetters[1].ID)
	assert.NotContains(t, out, listed.DeadLetters[2].ID)

	// Replay one, then the rest: each is delivered once.
	out, errOut, err = e.cli("replay", listed.DeadLetters[0].ID)
	require.NoError(t, err, errOut)
	assert.Contains(t, out, "1 replayed, 0 failed")
	e.waitDelivered([]string{listed.DeadLetters[0].Conversation}, 30*time.Second)
	out, errOut, err = e.cli("replay", "--all", "--json")
	require.NoError(t, err, errOut)
	var replayed struct {
		Results []struct {
			ID string `json:"id"`
			OK bool   `json:"ok"`
		} `json:"results"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &replayed), out)
	assert.Len(t, replayed.Results, len(convs)-1)
	e.waitDelivered(convs, 30*time.Second)
	e.requireDrained()
	e.requireExactlyOnce(convs)

	// Replaying what is gone fails, clearly and with a non-zero exit.
	out, _, err = e.cli("replay", listed.DeadLetters[0].ID)
	require.Error(t, err)
	assert.Contains(t, out, "no such dead letter")

	// Drop: one more rejection, dropped for good.
	e.platform.FailNext(1, http.StatusNotFound)
	require.NoError(t, s.deliver(ctx, "reject-drop"))
	eventually(t, 30*time.Second, "a dead letter", func() bool { return e.stats().DeadLetters == 1 })
	out, errOut, err = e.cli("list", "--json")
	require.NoError(t, err, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &listed), out)
	require.Len(t, listed.DeadLetters, 1)
	out, errOut, err = e.cli("drop", listed.DeadLetters[0].ID)
	require.NoError(t, err, errOut)
	assert.Contains(t, out, "1 dropped")
	out, errOut, err = e.cli("list")
	require.NoError(t, err, errOut)
	assert.Contains(t, out, "no dead letters")
	assert.Zero(t, e.stats().Depth, "dropped, not replayed")

	eventually(t, 40*time.Second, "stepup_outbox_dead_letters 0", func() bool { return e.metric("stepup_outbox_dead_letters") == 0 })
	assert.Zero(t, e.metric("stepup_outbox_depth"))
	assert.NotContains(t, e.metricsText(), "reject-", "no conversation ids in metrics")
}

// The CLI refuses the memory store, saying why.
func TestOutboxCLIWithMemoryStore(t *testing.T) {
	slow(t)
	bin := binary(t)
	cfg := filepath.Join(t.TempDir(), "memory.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("server:\n  public_url: http://127.0.0.1:8080\nstore:\n  driver: memory\nbrands: []\n"), 0o600))
	for _, sub := range []string{"list", "stats", "replay --all", "drop 1:1-0"} {
		_, errOut, err := runCLI(t, bin, os.Environ(), append(strings.Fields(sub), "--config", cfg)...)
		require.Error(t, err, sub)
		assert.Contains(t, errOut, "live inside the serving process", sub)
	}
	_, errOut, err := runCLI(t, bin, os.Environ(), "replay", "--config", cfg)
	require.Error(t, err)
	assert.Contains(t, errOut, "needs dead letter IDs or --all")
}
