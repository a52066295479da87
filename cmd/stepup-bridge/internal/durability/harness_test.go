package durability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stepup-bridge/stepup-bridge/adapters/oidc/oidctest"
	"github.com/stepup-bridge/stepup-bridge/adapters/standard"
	"github.com/stepup-bridge/stepup-bridge/adapters/standard/standardtest"
	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// slow skips a test of this tier under -short.
func slow(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("durability tier (real processes, SIGKILL, Redis restarts): skipped with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not on PATH: %v", err)
	}
}

// The binary under test, built once per test run.
var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "stepup-durability-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "stepup-bridge")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", binPath, "github.com/stepup-bridge/stepup-bridge/cmd/stepup-bridge").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// orphanProof kills a child if the test binary dies without cleaning up.
func orphanProof(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// redisProc is a private redis-server with append-only persistence fsynced
// on every write (appendfsync always): a write Redis acknowledged survives
// SIGKILL. The outbox's guarantee is only as strong as this setting; with
// the common "everysec", up to a second of acknowledged writes can be lost
// in a crash.
type redisProc struct {
	t    *testing.T
	port int
	addr string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedis(t *testing.T) *redisProc {
	t.Helper()
	r := &redisProc{t: t, port: freePort(t), dir: t.TempDir()}
	r.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *redisProc) start() {
	r.t.Helper()
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port),
		"--dir", r.dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--logfile", filepath.Join(r.dir, "redis.log"))
	orphanProof(cmd)
	require.NoError(r.t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
	defer c.Close()
	eventually(r.t, 10*time.Second, "redis-server to answer", func() bool {
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.t.Fatalf("redis-server exited:\n%s", log)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		// PING answers while the AOF is still loading; a real command waits.
		return c.Exists(ctx, "x").Err() == nil
	})
}

// kill ends redis-server with SIGKILL, as a crash would.
func (r *redisProc) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// restart starts redis-server again on the same port and directory, so it
// loads its append-only file.
func (r *redisProc) restart() {
	r.t.Helper()
	require.Nil(r.t, r.cmd, "redis-server still running")
	r.start()
}

// proxy stands between the bridge and the fake platform and injects
// outages. Modes: pass (forward), unavailable (503 with Retry-After, not
// forwarded), hang (not forwarded; held until the caller gives up), lost
// (forwarded and accepted by the platform, but the answer never arrives:
// the caller times out and must not make the effect happen twice).
type proxy struct {
	*httptest.Server
	target string
	mode   atomic.Value // string
	delay  atomic.Int64 // pass: extra latency before answering (widens crash windows)
	quit   chan struct{}

	mu     sync.Mutex
	counts map[string]int
	lost   map[string]bool // webhook-ids whose answer was lost
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{target: target, counts: map[string]int{}, lost: map[string]bool{}, quit: make(chan struct{})}
	p.mode.Store("pass")
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(func() {
		close(p.quit)
		p.Close()
	})
	return p
}

func (p *proxy) setMode(m string) { p.mode.Store(m) }

// wait holds a request until its caller gives up or the test ends.
func (p *proxy) wait(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-p.quit:
	}
}

func (p *proxy) count(mode string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[mode]
}

func (p *proxy) lostIDs() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lost)
}

func (p *proxy) serve(w http.ResponseWriter, r *http.Request) {
	mode := p.mode.Load().(string)
	p.mu.Lock()
	p.counts[mode]++
	p.mu.Unlock()
	// Read the body first: only then does net/http watch the connection
	// and cancel r.Context() when the caller gives up.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	switch mode {
	case "unavailable":
		w.Header().Set("Retry-After", "1")
		http.Error(w, "platform down", http.StatusServiceUnavailable)
		return
	case "hang":
		p.wait(r)
		return
	}
	req, _ := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, "proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if mode == "lost" {
		if resp.StatusCode < 300 {
			p.mu.Lock()
			p.lost[r.Header.Get("webhook-id")] = true
			p.mu.Unlock()
		}
		p.wait(r)
		return
	}
	if d := time.Duration(p.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(rb)
}

// env is one bridge deployment under test: the fake platform behind the
// proxy, an IdP, a private Redis, a configuration file, and the bridge
// process (restartable on the same port).
type env struct {
	t        *testing.T
	bin      string
	platform *standardtest.Server
	proxy    *proxy
	redis    *redisProc
	port     int
	url      string
	cfgPath  string
	environ  []string
	webhook  string // whsec_ the bridge verifies inbound webhooks with
	logPath  string

	cmd  *exec.Cmd
	done chan struct{}
}

type envOptions struct {
	maxAttempts int
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	slow(t)
	if o.maxAttempts == 0 {
		o.maxAttempts = 200
	}
	e := &env{t: t, bin: binary(t), webhook: standardtest.NewSecret()}
	e.platform = standardtest.NewServer(t, standardtest.NewSecret())
	e.proxy = newProxy(t, e.platform.URL)
	e.redis = startRedis(t)
	idp := oidctest.NewTest(t, oidctest.Config{})
	e.port = freePort(t)
	e.url = fmt.Sprintf("http://127.0.0.1:%d", e.port)
	dir := t.TempDir()
	e.logPath = filepath.Join(dir, "bridge.log")
	e.cfgPath = filepath.Join(dir, "config.yaml")
	// Short backoffs and timeouts so outages heal within a test; the
	// lease (claim_idle) is short so a killed process' entries come back
	// quickly, and above call_timeout as validation demands.
	cfg := fmt.Sprintf(`server:
  listen: "127.0.0.1:%d"
  public_url: %q
  log_format: json
  log_level: info
  shutdown_timeout: 2s
store:
  driver: redis
  redis:
    addrs: [%q]
    dial_timeout: 300ms
    read_timeout: 1s
    write_timeout: 1s
  outbox:
    workers: 4
    max_attempts: %d
    min_backoff: 100ms
    max_backoff: 1s
    call_timeout: 1s
    claim_idle: 3s
brands:
  - id: acme
    api_keys: ["${ACME_API_KEY}"]
    platforms:
      - type: standard
        webhook_secrets: ["${ACME_WEBHOOK_SECRET}"]
        endpoint: %s/events
        endpoint_secret: ${ACME_ENDPOINT_SECRET}
    identity:
      type: oidc
      issuer: %s
      client_id: %s
      client_secret: ${IDP_CLIENT_SECRET}
`, e.port, e.url, e.redis.addr, o.maxAttempts, e.proxy.URL, idp.Issuer(), idp.ClientID())
	require.NoError(t, os.WriteFile(e.cfgPath, []byte(cfg), 0o600))
	e.environ = append(os.Environ(),
		"ACME_API_KEY=acme-api-key-"+bridge.RandomString(24),
		"ACME_WEBHOOK_SECRET="+e.webhook,
		"ACME_ENDPOINT_SECRET="+e.platform.Secret(),
		"IDP_CLIENT_SECRET="+idp.ClientSecret(),
	)
	t.Cleanup(func() {
		e.kill()
		if t.Failed() {
			log, _ := os.ReadFile(e.logPath)
			t.Logf("bridge log (last 4 KiB):\n%s", tailBytes(log, 4096))
		}
	})
	e.start()
	return e
}

func tailBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// start runs the bridge and waits until it is ready.
func (e *env) start() {
	e.t.Helper()
	require.Nil(e.t, e.cmd, "bridge still running")
	log, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(e.t, err)
	cmd := exec.Command(e.bin, "serve", "--config", e.cfgPath)
	cmd.Env = e.environ
	cmd.Stdout, cmd.Stderr = log, log
	orphanProof(cmd)
	require.NoError(e.t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(done) }()
	e.cmd, e.done = cmd, done
	eventually(e.t, 20*time.Second, "the bridge to be ready", func() bool {
		select {
		case <-done:
			e.t.Fatalf("bridge exited during start; see its log")
		default:
		}
		resp, err := http.Get(e.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// stop ends the bridge with SIGTERM (a deploy, a scale-down) and returns
// its exit code.
func (e *env) stop() int {
	e.t.Helper()
	require.NotNil(e.t, e.cmd, "bridge not running")
	require.NoError(e.t, e.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-e.done:
	case <-time.After(30 * time.Second):
		e.t.Fatal("the bridge did not stop within 30s of SIGTERM")
	}
	code := e.cmd.ProcessState.ExitCode()
	e.cmd = nil
	return code
}

// kill ends the bridge with SIGKILL: no graceful shutdown, nothing settled.
func (e *env) kill() {
	if e.cmd == nil {
		return
	}
	_ = e.cmd.Process.Kill()
	<-e.done
	e.cmd = nil
}

// attempt is one webhook request as the platform saw it.
type attempt struct {
	start, end time.Time
	status     int // 0: no answer (connection refused, reset)
}

// sender plays the messaging platform: it sends each event until the
// bridge acknowledges it with 2xx, as platforms do (same webhook-id on
// every retry), and records every attempt.
type sender struct {
	e    *env
	mu   sync.Mutex
	log  []attempt
	acks map[string]bool // conversation → acknowledged
}

func (e *env) sender() *sender { return &sender{e: e, acks: map[string]bool{}} }

// verifyEvent is an agent typing the agent command in conversation conv:
// the bridge issues a login link and posts it through the outbox.
func verifyEvent(conv string, at time.Time) []byte {
	return standardtest.Body(standard.TypeMessageCreated, at, standardtest.MessageCreated{
		ConversationID: conv, ConsumerID: "consumer-" + conv, Channel: "web",
		Author: standardtest.Author{Role: standard.RoleAgent, ID: "agent-7"}, Text: "/verify",
	})
}

var client = &http.Client{Timeout: 5 * time.Second}

// deliver sends conv's event until it is acknowledged or ctx ends.
func (s *sender) deliver(ctx context.Context, conv string) error {
	id := "evt-" + conv
	body := verifyEvent(conv, time.Now())
	for {
		a := attempt{start: time.Now()}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.e.url+"/webhooks/acme/standard", bytes.NewReader(body))
		req.Header = standardtest.SignedRequest(s.e.webhook, id, time.Now(), body)
		resp, err := client.Do(req)
		a.end = time.Now()
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			a.status = resp.StatusCode
		}
		s.mu.Lock()
		s.log = append(s.log, a)
		if a.status >= 200 && a.status < 300 {
			s.acks[conv] = true
		}
		s.mu.Unlock()
		switch {
		case a.status >= 200 && a.status < 300:
			return nil
		case a.status != 0 && a.status != http.StatusServiceUnavailable:
			return fmt.Errorf("event %s: status %d", id, a.status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("event %s never acknowledged: %w", id, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *sender) acked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acks)
}

func (s *sender) attempts() []attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]attempt(nil), s.log...)
}

// burst sends the events of convs one after the other in the background,
// pace apart; the returned channel yields the first error (or nil) when
// all are done.
func (s *sender) burst(ctx context.Context, convs []string, pace time.Duration) <-chan error {
	out := make(chan error, 1)
	go func() {
		for _, c := range convs {
			if err := s.deliver(ctx, c); err != nil {
				out <- err
				return
			}
			time.Sleep(pace)
		}
		out <- nil
	}()
	return out
}

func conversations(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

// linkPosts returns, per conversation, the webhook-ids of the accepted
// stepup.message.post calls (the fake keeps the first delivery of each id).
func (e *env) linkPosts() map[string][]string {
	out := map[string][]string{}
	for _, c := range e.platform.Calls() {
		if m, ok := c.Message.(*standardtest.MessagePost); ok {
			out[m.ConversationID] = append(out[m.ConversationID], c.ID)
		}
	}
	return out
}

// waitDelivered waits until every conversation has its link posted.
func (e *env) waitDelivered(convs []string, timeout time.Duration) {
	e.t.Helper()
	eventually(e.t, timeout, fmt.Sprintf("%d link messages", len(convs)), func() bool {
		posts := e.linkPosts()
		for _, c := range convs {
			if len(posts[c]) == 0 {
				return false
			}
		}
		return true
	})
}

// requireExactlyOnce checks that every conversation got exactly one link
// message (one idempotency key), that it is this bridge's link, and that
// nothing else was posted.
func (e *env) requireExactlyOnce(convs []string) {
	e.t.Helper()
	posts := e.linkPosts()
	want := map[string]bool{}
	for _, c := range convs {
		want[c] = true
		require.Len(e.t, posts[c], 1, "conversation %s: link messages by idempotency key", c)
	}
	for c := range posts {
		require.True(e.t, want[c], "unexpected message for conversation %s", c)
	}
	for _, c := range e.platform.Calls() {
		m, ok := c.Message.(*standardtest.MessagePost)
		require.True(e.t, ok, "only link messages expected, got %s", c.Type)
		require.Contains(e.t, m.Text, e.url+"/login/acme/", "the posted text carries the login link")
	}
	require.Empty(e.t, e.platform.Violations())
}

// cli runs the outbox CLI against this deployment's Redis.
func (e *env) cli(args ...string) (stdout, stderr string, err error) {
	e.t.Helper()
	return runCLI(e.t, e.bin, e.environ, append(args, "--config", e.cfgPath)...)
}

func runCLI(t *testing.T, bin string, environ []string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"outbox"}, args...)...)
	cmd.Env = environ
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	orphanProof(cmd)
	err := cmd.Run()
	return out.String(), errb.String(), err
}

type outboxStats struct {
	Depth            int64 `json:"depth"`
	Ready            int64 `json:"ready"`
	InFlight         int64 `json:"in_flight"`
	Delayed          int64 `json:"delayed"`
	DeadLetters      int64 `json:"dead_letters"`
	OldestAgeSeconds int64 `json:"oldest_age_seconds"`
}

func (e *env) stats() outboxStats {
	e.t.Helper()
	out, errOut, err := e.cli("stats", "--json")
	require.NoError(e.t, err, "outbox stats: %s", errOut)
	var st outboxStats
	require.NoError(e.t, json.Unmarshal([]byte(out), &st), out)
	return st
}

// requireDrained checks the outbox is empty: nothing waiting, nothing dead.
func (e *env) requireDrained() {
	e.t.Helper()
	eventually(e.t, 10*time.Second, "an empty outbox", func() bool {
		st := e.stats()
		return st.Depth == 0 && st.DeadLetters == 0
	})
}

// metric returns the value of one sample line of the bridge's /metrics
// ("name" or "name{labels}"), or -1 if absent.
func (e *env) metric(sample string) float64 {
	e.t.Helper()
	resp, err := http.Get(e.url + "/metrics")
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			require.NoError(e.t, err, line)
			return v
		}
	}
	return -1
}

func (e *env) metricsText() string {
	e.t.Helper()
	resp, err := http.Get(e.url + "/metrics")
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
