package redisstore_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore/redistest"
)

// The numbers the README states. Reproduce them with
//
//	STEPUP_MEASURE=1 go test -count=1 -v -run 'TestRoundTrips|TestMemory' ./bridge/redisstore/
//
// Round trips are counted by a go-redis hook (one per command, one per
// pipeline); only the counts of state-changing scripts are asserted, never
// times.

// TestRoundTrips walks one conversation through the whole bridge-driven
// step-up via bridge.Service and counts Redis round trips per step.
func TestRoundTrips(t *testing.T) {
	ctx := t.Context()
	c := redistest.Client(t, redistest.StandaloneAddr())
	h := attach(c)
	p, idp := newFakePlatform(), newFakeIdP()
	r := newReplica(t, redistest.Store(t, c, redisstore.Options{}), p, idp)
	conv := fmt.Sprintf("conv-%d", time.Now().UnixNano())
	// Warm the connection pool so that dialling is not counted.
	_, err := r.svc.Store().Claim(ctx, "w1", 1, 0)
	require.NoError(t, err)
	h.reset()

	type step struct {
		name          string
		trips, writes int // writes: state-changing script calls
		cmds          map[string]int
	}
	var steps []step
	// wantWrites < 0: not asserted (the claim sweep's probes are scripts too).
	measure := func(name string, wantTrips, wantWrites int, fn func()) {
		t.Helper()
		fn()
		trips, cmds, _ := h.reset()
		st := step{name: name, trips: trips, writes: cmds["evalsha"] + cmds["eval"], cmds: cmds}
		steps = append(steps, st)
		assert.Equal(t, wantTrips, st.trips, "%s: round trips", name)
		if wantWrites >= 0 {
			assert.Equal(t, wantWrites, st.writes, "%s: state-changing calls", name)
		}
	}
	ev := func(id, kind, text string) fakeEvent {
		return fakeEvent{ID: id, Kind: kind, Conversation: conv, Consumer: "anon-1", Channel: "web", Text: text}
	}
	webhook := func(e fakeEvent) {
		_, err := r.webhook(ctx, e)
		require.NoError(t, err)
	}

	measure("webhook: conversation started", 1, 1, func() { webhook(ev("e1", string(bridge.EventConversationStarted), "")) })
	measure("webhook: consumer message", 1, 1, func() { webhook(ev("e2", string(bridge.EventConsumerMessage), "hello")) })
	measure("webhook: duplicate (platform retry)", 1, 1, func() { webhook(ev("e2", string(bridge.EventConsumerMessage), "hello")) })
	var link bridge.Link
	measure("API: issue and post a login link (read + write)", 2, 1, func() {
		var err error
		link, err = r.svc.RequestLink(ctx, brandID, conv, true)
		require.NoError(t, err)
	})
	u, err := url.Parse(link.URL)
	require.NoError(t, err)
	ticket := path.Base(u.Path)
	measure("browser: preview login page (reads only)", 2, 0, func() {
		_, err := r.svc.PreviewLogin(ctx, brandID, ticket)
		require.NoError(t, err)
	})
	var ls bridge.LoginStart
	measure("browser: start login (ticket lookup + consume)", 2, 1, func() {
		var err error
		ls, err = r.svc.StartLogin(ctx, brandID, ticket)
		require.NoError(t, err)
	})
	var code string
	measure("browser: IdP callback (take transaction + verify login)", 2, 2, func() {
		au, err := url.Parse(ls.AuthURL)
		require.NoError(t, err)
		res, err := r.svc.FinishLogin(ctx, brandID, ls.TxnCookie, bridge.Callback{State: au.Query().Get("state"), Code: "code-for-" + au.Query().Get("nonce")})
		require.NoError(t, err)
		code = res.Code
	})
	measure("webhook: confirm code → stepped up + 4 outbox entries", 1, 1, func() {
		webhook(ev("e3", string(bridge.EventConsumerMessage), code))
	})
	st, err := r.svc.Status(ctx, brandID, conv)
	require.NoError(t, err)
	require.Equal(t, bridge.StateSteppedUp, st.State)
	h.reset()

	// Outbox: the entries this store wrote are claimed from their partition
	// directly (one round trip); then one ack per entry; an idle sweep
	// (what finds entries other replicas wrote) probes every partition.
	var ds []bridge.Delivery
	measure("outbox: claim the 5 entries written here (no probe)", 1, -1, func() {
		var err error
		ds, err = r.svc.Store().Claim(ctx, "w1", 16, 0)
		require.NoError(t, err)
	})
	require.Len(t, ds, 5)
	measure("outbox: ack one entry", 1, 1, func() { require.NoError(t, r.svc.Store().Ack(ctx, ds[0])) })
	measure("outbox: idle claim sweep (probe 64 partitions)", 1, -1, func() {
		_, err := r.svc.Store().Claim(ctx, "w1", 16, 0)
		require.NoError(t, err)
	})

	var b strings.Builder
	fmt.Fprintf(&b, "\n%-60s %6s %6s  %s\n", "step", "trips", "writes", "commands")
	for _, s := range steps {
		fmt.Fprintf(&b, "%-60s %6d %6d  %s\n", s.name, s.trips, s.writes, cmdList(s.cmds))
	}
	t.Log(b.String())
}

func cmdList(m map[string]int) string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s×%d", k, v))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// TestMemoryPerConversation measures the Redis memory a tracked
// conversation costs with MEMORY USAGE (key, value, TTL entry excluded; see
// the bulk figure for everything) and extrapolates to 10 million.
func TestMemoryPerConversation(t *testing.T) {
	ctx := t.Context()
	c := redistest.Client(t, redistest.StandaloneAddr())
	s := redistest.Store(t, c, redisstore.Options{})
	usage := func(key string) int64 {
		n, err := c.MemoryUsage(ctx, key, 0).Result()
		require.NoError(t, err, key)
		return n
	}
	now := time.Now()
	// Platform conversation ids are UUIDs or similar opaque ids.
	k := bridge.Key{Brand: "acme-retail", Conversation: "6f1c2a9e-8d43-4b7a-9c1e-2f5d7a3b8e10"}
	o := bridge.Observation{Key: k, Platform: "standard", Consumer: "anon-3f9a2c7d41b84e6f", Channel: "web", At: now}
	for i := range 5 {
		err := s.Observe(ctx, "msg_2NfXkPq8Yt4Zr7Lm"+strconv.Itoa(i), o)
		require.NoError(t, err)
	}
	anonSession, anonDedupe := usage(s.SessionKey(k)), usage(s.DedupeKey(k))

	tok := bridge.NewToken(k)
	_, err := s.IssueTicket(ctx, bridge.IssueTicket{EventID: "cmd_9xQ", Obs: &o, Key: k, TicketHash: tok.Hash(), Now: now, ExpiresAt: now.Add(15 * time.Minute), MaxLinks: 5})
	require.NoError(t, err)
	ticket := usage(s.TicketKey(tok.Partition, tok.Hash()))
	linkSession := usage(s.SessionKey(k))
	txn := bridge.NewTokenIn(tok.Partition)
	_, err = s.BeginLogin(ctx, bridge.BeginLogin{Brand: k.Brand, Partition: tok.Partition, TicketHash: tok.Hash(), TxnHash: txn.Hash(), Now: now,
		Txn: bridge.LoginTxn{State: bridge.RandomString(32), Nonce: bridge.RandomString(32), Verifier: bridge.RandomString(48), CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}})
	require.NoError(t, err)
	txnBytes := usage(s.TxnKey(txn.Partition, txn.Hash()))
	_, err = s.TakeLogin(ctx, k.Brand, txn.Partition, txn.Hash(), now)
	require.NoError(t, err)
	_, err = s.VerifyLogin(ctx, bridge.VerifyLogin{Key: k, Identity: testIdentity(), Now: now, CodeHash: bridge.CodeHash(k, "123456"), CodeExpiresAt: now.Add(5 * time.Minute)})
	require.NoError(t, err)
	pendingSession := usage(s.SessionKey(k))
	res, _, err := s.ConfirmCode(ctx, bridge.ConfirmCode{EventID: "msg_code", Obs: o, CodeHash: bridge.CodeHash(k, "123456"), MaxAttempts: 3})
	require.NoError(t, err)
	require.Equal(t, bridge.CodeMatched, res)
	steppedSession, steppedDedupe := usage(s.SessionKey(k)), usage(s.DedupeKey(k))
	// A long chat: the dedupe set holds every event id of the last DedupeTTL.
	for i := range 43 {
		err := s.Observe(ctx, "msg_later_"+strconv.Itoa(i), o)
		require.NoError(t, err)
	}
	longDedupe := usage(s.DedupeKey(k))

	const conversations = 10_000_000
	gib := func(perConv int64) string {
		return fmt.Sprintf("%.1f GiB", float64(perConv)*conversations/(1<<30))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nMEMORY USAGE (bytes, SAMPLES 0; Redis %s)\n", serverVersion(t, c))
	row := func(name string, n int64) { fmt.Fprintf(&b, "  %-58s %5d\n", name, n) }
	row("anonymous session (5 events seen)", anonSession)
	row("dedupe set (5 event ids)", anonDedupe)
	row("= anonymous conversation", anonSession+anonDedupe)
	row("session with a link issued", linkSession)
	row("ticket pointer (lives until the link expires or is used)", ticket)
	row("login transaction (lives until the callback, ≤ txn TTL)", txnBytes)
	row("session waiting for the confirm code (pending identity)", pendingSession)
	row("stepped-up session (identity: name, email, amr, acr, 1 claim)", steppedSession)
	row("dedupe set (7 event ids)", steppedDedupe)
	row("= stepped-up conversation", steppedSession+steppedDedupe)
	row("dedupe set (50 event ids: a long chat)", longDedupe)
	fmt.Fprintf(&b, "  each further event id costs about %.0f bytes until it ages out (DedupeTTL)\n", float64(longDedupe-steppedDedupe)/43)
	fmt.Fprintf(&b, "10 million open conversations: anonymous %s, all stepped up %s (MEMORY USAGE only; see the bulk figure)\n",
		gib(anonSession+anonDedupe), gib(steppedSession+steppedDedupe))
	t.Log(b.String())
	assert.Less(t, anonSession+anonDedupe, int64(1024), "target: under 1 KiB per anonymous conversation")
	assert.Less(t, steppedSession+steppedDedupe, int64(1024), "target: under 1 KiB per stepped-up conversation")
}

func serverVersion(t *testing.T, c redis.UniversalClient) string {
	info, err := c.Info(t.Context(), "server").Result()
	require.NoError(t, err)
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "redis_version:"); ok {
			return v
		}
	}
	return "?"
}

// TestMemoryBulk creates many conversations on a private redis-server and
// divides the growth of used_memory by their number: this includes what
// MEMORY USAGE leaves out (the keyspace and expires dictionaries). It
// starts a process, so it is skipped with -short.
func TestMemoryBulk(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"standalone", nil},
		// A Cluster node keeps per-slot key lists: one node owning every
		// slot shows that overhead without a whole cluster.
		{"cluster node", []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { memoryBulk(t, tt.args) })
	}
}

func memoryBulk(t *testing.T, args []string) {
	srv := redistest.StartServerWith(t, args...)
	c := redistest.Client(t, srv.Addr)
	ctx := t.Context()
	if len(args) > 0 {
		require.NoError(t, c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err())
		waitFor(t, 10*time.Second, "cluster_state:ok", func() bool {
			info, err := c.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
	}
	s := redistest.Store(t, c, redisstore.Options{Prefix: "stepup"})
	// A small run keeps the test cheap in CI; STEPUP_MEASURE=1 makes the
	// figure stable (the README's numbers).
	n, events := 1000, 5
	if os.Getenv("STEPUP_MEASURE") != "" {
		n = 20000
	}
	used := func() int64 {
		info, err := c.Info(ctx, "memory").Result()
		require.NoError(t, err)
		for _, l := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
				x, err := strconv.ParseInt(v, 10, 64)
				require.NoError(t, err)
				return x
			}
		}
		t.Fatal("no used_memory in INFO")
		return 0
	}
	run := func(fn func(i int)) {
		var wg sync.WaitGroup
		jobs := make(chan int)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					fn(i)
				}
			}()
		}
		for i := range n {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
	}
	key := func(i int) bridge.Key {
		return bridge.Key{Brand: "acme-retail", Conversation: fmt.Sprintf("6f1c2a9e-8d43-4b7a-9c1e-%012d", i)}
	}
	obs := func(k bridge.Key) bridge.Observation {
		return bridge.Observation{Key: k, Platform: "standard", Consumer: "anon-3f9a2c7d41b84e6f", Channel: "web", At: time.Now()}
	}
	before := used()
	run(func(i int) {
		for e := range events {
			err := s.Observe(context.Background(), fmt.Sprintf("msg_%d_%d", i, e), obs(key(i)))
			if err != nil {
				t.Error(err)
				return
			}
		}
	})
	anon := used()
	id := testIdentity()
	run(func(i int) {
		k := key(i)
		_, err := s.VerifyLogin(context.Background(), bridge.VerifyLogin{Key: k, Identity: id, Now: time.Now(), CodeHash: bridge.CodeHash(k, "123456"), CodeExpiresAt: time.Now().Add(time.Minute)})
		if err == nil {
			_, _, err = s.ConfirmCode(context.Background(), bridge.ConfirmCode{EventID: fmt.Sprintf("code_%d", i), Obs: obs(k), CodeHash: bridge.CodeHash(k, "123456"), MaxAttempts: 3})
		}
		if err != nil {
			t.Error(err)
		}
	})
	stepped := used()
	perAnon, perStepped := (anon-before)/int64(n), (stepped-before)/int64(n)
	t.Logf("\nused_memory growth over %d conversations (%d events each): anonymous %d B/conversation, stepped up (+1 event) %d B/conversation\n"+
		"10 million open conversations: anonymous %.1f GiB, all stepped up %.1f GiB (used_memory; add allocator fragmentation and replica/AOF headroom)",
		n, events, perAnon, perStepped, float64(perAnon)*1e7/(1<<30), float64(perStepped)*1e7/(1<<30))
}
