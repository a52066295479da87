package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepup-bridge/stepup-bridge/adapters/devidp"
)

type runOptions struct {
	bridgeBin   string
	port        int
	store       string
	redisAddr   string
	redisDB     int
	conc        int
	warmup      time.Duration
	duration    time.Duration
	requests    uint64
	rate        float64
	baseRate    float64
	halfRate    bool
	sustain     time.Duration
	active      int
	perConv     int
	verifyEvery int
	existing    int
	stepups     int
	stepupConc  int
	skip        map[string]bool
	logLevel    string
	bridgeLog   string
	jsonOut     string
	keep        bool
	background  time.Duration
	perfSeconds int
	perfOut     string
	platforms   []string
	bridgeEnv   []string
	target      string
	targetKey   string
	targetBrand string
	alternate   int
}

// report is everything a run measured.
type report struct {
	When        time.Time          `json:"when"`
	Machine     map[string]string  `json:"machine"`
	Options     map[string]string  `json:"options"`
	Phases      []phaseResult      `json:"phases"`
	Ratio       float64            `json:"bridge_to_baseline_throughput"`
	Ratios      map[string]float64 `json:"bridge_to_baseline_throughput_by_platform,omitempty"`
	StepUps     []stepUpResult     `json:"step_ups,omitempty"`
	Endpoint    map[string]int64   `json:"endpoint_calls,omitempty"`
	Background  map[string]float64 `json:"redis_idle_background_per_sec,omitempty"`
	RedisMemory map[string]int64   `json:"redis_memory,omitempty"`
	Notes       []string           `json:"notes,omitempty"`
	Extra       map[string]any     `json:"extra,omitempty"`
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o runOptions
	var skip, platforms, benv string
	fs.StringVar(&o.bridgeBin, "bridge-bin", "", "stepup-bridge binary (default: go build ./cmd/stepup-bridge into a temporary directory)")
	fs.IntVar(&o.port, "port", 18080, "loopback port of the server under test (the baseline, then the bridge)")
	fs.StringVar(&o.store, "store", "redis", "bridge store.driver: redis or memory")
	fs.StringVar(&o.redisAddr, "redis", "127.0.0.1:6379", "Redis address (loopback)")
	fs.IntVar(&o.redisDB, "redis-db", 9, "Redis database for the bridge's keys (the tests use 0)")
	fs.IntVar(&o.conc, "concurrency", 32, "client connections for the as-fast-as-possible phases")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "warm-up before each measured closed-loop phase (not recorded)")
	fs.DurationVar(&o.duration, "duration", 15*time.Second, "length of each measured phase")
	fs.Uint64Var(&o.requests, "requests", 2_000_000, "at most this many requests per phase")
	fs.Float64Var(&o.rate, "rate", 0, "fixed-rate phase at this many requests/s (0: see --half)")
	fs.Float64Var(&o.baseRate, "baseline-rate", 0, "also a fixed-rate phase on the baseline at this many requests/s (the harness's own latency at that rate); 0 = none")
	fs.BoolVar(&o.halfRate, "half", true, "fixed-rate phase at half of the bridge's measured maximum")
	fs.DurationVar(&o.sustain, "sustain", 0, "also a sustained fixed-rate phase this long (RSS over time); 0 = none")
	fs.IntVar(&o.active, "conversations", 5000, "conversations open at any time")
	fs.IntVar(&o.perConv, "events-per-conversation", 20, "events per conversation before it closes and a new one starts")
	fs.IntVar(&o.verifyEvery, "verify-every", 500, "one agent /verify (a login link issued and posted) in this many events; 0 = none")
	fs.IntVar(&o.existing, "existing", 0, "send messages to conversations pop-0..pop-N-1 written by `populate` instead of fresh ones")
	fs.IntVar(&o.stepups, "stepups", 40, "full step-ups (login at the development IdP) per binding during the fixed-rate phase; 0 = none")
	fs.IntVar(&o.stepupConc, "stepup-concurrency", 4, "step-ups in flight at once")
	fs.StringVar(&skip, "skip", "", "comma-separated phases to skip: baseline, max, fixed, stepups")
	fs.StringVar(&platforms, "platforms", "standard,liveperson", "adapters to load, each with its own baseline and max phases (the fixed-rate phase uses the first)")
	fs.StringVar(&o.logLevel, "bridge-log-level", "info", "the bridge's server.log_level (info: an access-log line per request, as in production)")
	fs.StringVar(&benv, "bridge-env", "", "comma-separated KEY=VALUE added to the bridge's environment (e.g. GOMAXPROCS=1,GOGC=200)")
	fs.StringVar(&o.bridgeLog, "bridge-log", "", "file for the bridge's log (default: discarded)")
	fs.StringVar(&o.jsonOut, "json", "", "also write the report as JSON to this file")
	fs.BoolVar(&o.keep, "keep", false, "keep the bridge's keys in Redis after the run")
	fs.DurationVar(&o.background, "background", 5*time.Second, "idle window measuring the bridge's background Redis traffic")
	fs.IntVar(&o.perfSeconds, "perf", 0, "record `perf record -g` of the bridge for this many seconds during the max phase (needs perf)")
	fs.StringVar(&o.perfOut, "perf-out", "bridge.perf.data", "perf output file")
	fs.StringVar(&o.target, "target", "", "an already running bridge's base URL (webhook path only: no baseline, no step-ups)")
	fs.StringVar(&o.targetKey, "webhook-secret", os.Getenv("LOADGEN_WEBHOOK_SECRET"), "with --target: the brand's standard webhook secret (whsec_…)")
	fs.StringVar(&o.targetBrand, "brand", "acme", "with --target: the brand id")
	fs.IntVar(&o.alternate, "alternate", 0, "instead of the phases: N rounds of baseline max then bridge max (each a fresh process on the port) per platform, the ratio from their sums; cancels the host's drift between phases")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, kv := range strings.Split(benv, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			if !strings.Contains(kv, "=") {
				return fmt.Errorf("--bridge-env: %q is not KEY=VALUE", kv)
			}
			o.bridgeEnv = append(o.bridgeEnv, kv)
		}
	}
	o.skip = map[string]bool{}
	for _, s := range strings.Split(skip, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.skip[s] = true
		}
	}
	for _, p := range strings.Split(platforms, ",") {
		switch p = strings.TrimSpace(p); p {
		case "standard", "liveperson":
			o.platforms = append(o.platforms, p)
		case "":
		default:
			return fmt.Errorf("--platforms: unknown platform %q (standard, liveperson)", p)
		}
	}
	if len(o.platforms) == 0 {
		return errors.New("--platforms: at least one")
	}
	if o.alternate < 0 {
		return errors.New("--alternate: rounds >= 0")
	}
	if o.alternate > 0 {
		o.skip["baseline"] = true // measured in the rounds instead
	}
	if o.conc < 1 || o.duration <= 0 || o.duration > time.Hour || o.sustain > time.Hour {
		return errors.New("need --concurrency >= 1 and durations up to 1h")
	}
	if err := loopbackOnly("--redis", o.redisAddr); err != nil {
		return err
	}
	if o.target != "" {
		u, err := url.Parse(o.target)
		if err != nil {
			return fmt.Errorf("--target: %w", err)
		}
		if err := loopbackOnly("--target", u.Host); err != nil {
			return err
		}
		return runTarget(ctx, o, stdout)
	}
	if o.store == "redis" && o.redisDB == 0 {
		return errors.New("--redis-db 0 is the test suites' database: use another")
	}
	l := &logger{w: stderr}
	rep := &report{When: time.Now().UTC(), Machine: machine(ctx, o), Options: map[string]string{
		"concurrency": strconv.Itoa(o.conc), "warmup": o.warmup.String(), "duration": o.duration.String(),
		"store": o.store, "redis": fmt.Sprintf("%s db %d", o.redisAddr, o.redisDB), "conversations": strconv.Itoa(o.active),
		"events_per_conversation": strconv.Itoa(o.perConv), "verify_every": strconv.Itoa(o.verifyEvery),
		"existing": strconv.Itoa(o.existing), "bridge_log_level": o.logLevel, "port": strconv.Itoa(o.port),
		"bridge_env": strings.Join(o.bridgeEnv, " "),
	}, Extra: map[string]any{}}

	tmp, err := os.MkdirTemp("", "stepup-loadgen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.bridgeBin == "" {
		l.printf("building ./cmd/stepup-bridge")
		if o.bridgeBin, err = buildBridge(ctx, tmp); err != nil {
			return err
		}
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port))
	base := "http://" + addr
	run := runID()
	sec := map[string]string{
		"LG_ACME_WEBHOOK_SECRET": newSecret(), "LG_GLOBEX_WEBHOOK_SECRET": newSecret(), "LG_ENDPOINT_SECRET": newSecret(),
		"LG_IDP_SECRET": "idp-" + runID() + runID(), "LG_API_KEY": "lg-api-key-" + runID() + runID() + runID() + runID(),
		"LG_LP_SECRET": "lp-secret-" + runID() + runID(),
	}
	sign := &signer{standard: mustKey(sec["LG_ACME_WEBHOOK_SECRET"]), lpAccount: lpAccountID, lpClient: lpClientID, lpSecret: []byte(sec["LG_LP_SECRET"])}
	brandOf := map[string]string{"standard": "acme", "liveperson": "lp"}
	newGen := func(platform, prefix string) *generator {
		g := newGenerator(brandOf[platform], platform, prefix, o.active, o.perConv, o.verifyEvery, 1)
		if platform == "standard" {
			g.existing = o.existing
		}
		return g
	}

	// --- baseline ---------------------------------------------------
	if !o.skip["baseline"] {
		l.printf("baseline: bare gin on %s", addr)
		p, err := startBaseline(ctx, addr, stderr)
		if err != nil {
			return err
		}
		s := &sender{base: base, client: newClient(o.conc), sign: sign}
		rss := sampleRSS(p.pid(), time.Second)
		for _, pl := range o.platforms {
			g := newGen(pl, "lg"+run+"b"+pl[:2])
			closedLoop(ctx, s, g, o.conc, limits{duration: o.warmup})
			cpu := startCPU(map[string]int{"server": p.pid(), "loadgen": os.Getpid()})
			t0 := time.Now()
			t := closedLoop(ctx, s, g, o.conc, limits{duration: o.duration, requests: o.requests})
			el := time.Since(t0)
			r := t.result("baseline max ("+pl+")", "baseline", "closed", o.conc, 0, el)
			r.CPU = cpu.cores()
			r.RSS = rss.window(t0, time.Now())
			rep.Phases = append(rep.Phases, r)
			l.phase(r)
		}
		if o.baseRate > 0 {
			// What the same open-loop client measures against a server that
			// does nothing: the floor under the bridge's fixed-rate latency.
			workers := max(o.conc*4, 128)
			cpu := startCPU(map[string]int{"server": p.pid(), "loadgen": os.Getpid()})
			t0 := time.Now()
			fs := &sender{base: base, client: newClient(max(o.conc, 256)), sign: sign} // as the bridge's
			t := openLoop(ctx, fs, newGen(o.platforms[0], "lg"+run+"bf"), o.baseRate, workers, limits{duration: o.duration, requests: o.requests})
			fs.client.CloseIdleConnections()
			r := t.result(fmt.Sprintf("baseline fixed %.0f/s", o.baseRate), "baseline", "open", workers, o.baseRate, time.Since(t0))
			r.CPU = cpu.cores()
			r.RSS = rss.window(t0, time.Now())
			rep.Phases = append(rep.Phases, r)
			l.phase(r)
		}
		rss.close()
		p.stop()
		s.client.CloseIdleConnections()
	}

	// --- the bridge ---------------------------------------------------
	ep, err := startEndpoint(sec["LG_ENDPOINT_SECRET"])
	if err != nil {
		return err
	}
	defer ep.close()
	idp, err := devidp.Start(devidp.Options{
		ClientID: "stepup-bridge", ClientSecret: sec["LG_IDP_SECRET"],
		RedirectURIs: []string{base + "/callback/acme", base + "/callback/globex", base + "/callback/lp"},
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	defer idp.Close()

	var rc *redis.Client
	if o.store == "redis" {
		rc = redis.NewClient(&redis.Options{Addr: o.redisAddr, DB: o.redisDB})
		defer rc.Close()
		if err := rc.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis %s: %w", o.redisAddr, err)
		}
		if !o.keep && o.existing == 0 {
			defer func() {
				cctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				n, err := deletePrefix(cctx, rc, "stepup:*")
				l.printf("cleanup: deleted %d keys from db %d (%v)", n, o.redisDB, err)
			}()
		}
		rep.RedisMemory = map[string]int64{}
		if m, err := usedMemory(ctx, rc); err == nil {
			rep.RedisMemory["used_memory_before"] = m
		}
	}
	cfgPath := filepath.Join(tmp, "bridge.yaml")
	if err := os.WriteFile(cfgPath, []byte(bridgeConfig(o, addr, ep.url, idp.Issuer())), 0o600); err != nil {
		return err
	}
	// A file, not a pipe: the bridge writes its log lines itself (to
	// /dev/null by default) and the load generator copies nothing.
	logPath := o.bridgeLog
	if logPath == "" {
		logPath = os.DevNull
	}
	blog, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer blog.Close()
	startBridge := func() (*proc, error) {
		cmd := exec.Command(o.bridgeBin, "serve", "--config", cfgPath)
		cmd.Env = os.Environ()
		for k, v := range sec {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, o.bridgeEnv...)
		bp, err := startProc("bridge", cmd, blog)
		if err != nil {
			return nil, err
		}
		if err := waitHTTP(ctx, bp, base+"/readyz", 20*time.Second); err != nil {
			bp.stop()
			return nil, err
		}
		return bp, nil
	}
	if o.alternate > 0 {
		err := alternate(ctx, o, rep, l, addr, rc, newGen, sign, startBridge, stderr)
		if err == nil {
			finishReport(stdout, o, rep)
		}
		return err
	}
	l.printf("bridge: %s on %s (store %s)", o.bridgeBin, addr, o.store)
	bp, err := startBridge()
	if err != nil {
		return err
	}
	defer bp.stop()
	rss := sampleRSS(bp.pid(), time.Second)
	defer rss.close()
	if v, err := readRSS(bp.pid()); err == nil {
		rep.Extra["bridge_rss_idle_mb"] = float64(v) / (1 << 20)
	}

	var bg background
	if rc != nil {
		l.printf("bridge idle for %s: background Redis traffic", o.background)
		if bg, err = measureBackground(ctx, rc, o.background); err != nil {
			return err
		}
		rep.Background = map[string]float64{"top_level": bg.topPerSec, "scripts": bg.scriptsPerSec}
		for k, v := range bg.commands {
			rep.Background[k] = float64(v) / bg.secs
		}
	}

	redisPID := 0
	if rc != nil {
		if v, err := infoField(ctx, rc, "server", "process_id"); err == nil {
			redisPID, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	s := &sender{base: base, client: newClient(max(o.conc, 256)), sign: sign}
	// One stream per platform for all bridge phases: conversations go on
	// from the warm-up into the measured phases.
	gens := map[string]*generator{}
	genFor := func(pl string) *generator {
		if gens[pl] == nil {
			gens[pl] = newGen(pl, "lg"+run+"r"+pl[:2])
		}
		return gens[pl]
	}
	measure := func(name, mode string, conc int, rate float64, do func() *tally) phaseResult {
		pids := map[string]int{"server": bp.pid(), "loadgen": os.Getpid(), "redis": redisPID}
		r, t0 := measured(ctx, rc, bg, pids, name, "bridge", mode, conc, rate, do)
		r.RSS = rss.window(t0, time.Now())
		rep.Phases = append(rep.Phases, r)
		l.phase(r)
		return r
	}

	maxRate := 0.0
	rep.Ratios = map[string]float64{}
	for i, pl := range o.platforms {
		if o.skip["max"] {
			break
		}
		g := genFor(pl)
		closedLoop(ctx, s, g, o.conc, limits{duration: o.warmup})
		var perfDone chan error
		if o.perfSeconds > 0 && i == 0 {
			perfDone = make(chan error, 1)
			go func() {
				c := exec.CommandContext(ctx, "perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(bp.pid()), "-o", o.perfOut, "--", "sleep", strconv.Itoa(o.perfSeconds))
				c.Stdout, c.Stderr = io.Discard, io.Discard
				perfDone <- c.Run()
			}()
		}
		r := measure("bridge max ("+pl+")", "closed", o.conc, 0, func() *tally {
			return closedLoop(ctx, s, g, o.conc, limits{duration: o.duration, requests: o.requests})
		})
		if perfDone != nil {
			if err := <-perfDone; err != nil {
				l.printf("perf: %v", err)
			} else {
				l.printf("perf: wrote %s (perf report -i %s --no-children)", o.perfOut, o.perfOut)
			}
		}
		if b := baselineOf(rep, pl); b > 0 {
			rep.Ratios[pl] = r.Throughput / b
		}
		if i == 0 {
			maxRate = r.Throughput
			rep.Ratio = rep.Ratios[pl]
		}
	}

	rate := o.rate
	if rate == 0 && o.halfRate && maxRate > 0 {
		rate = maxRate / 2
	}
	g := genFor(o.platforms[0])
	st := &stepper{s: &sender{base: base, client: newClient(16), sign: sign}, browser: newClient(16), ep: ep, bridge: base, prefix: "lg" + run + "s"}
	globex := &stepper{s: &sender{base: base, client: newClient(16), sign: &signer{standard: mustKey(sec["LG_GLOBEX_WEBHOOK_SECRET"])}}, browser: newClient(16), ep: ep, bridge: base, prefix: "lg" + run + "n"}
	if rate > 0 && !o.skip["fixed"] {
		workers := max(o.conc*4, 128)
		var sus []stepUpResult
		done := make(chan struct{})
		go func() {
			defer close(done)
			if o.stepups > 0 && !o.skip["stepups"] {
				time.Sleep(time.Second) // into the phase
				sus = append(sus, st.runStepUps(ctx, "acme", true, o.stepups, o.stepupConc))
				sus = append(sus, globex.runStepUps(ctx, "globex", false, o.stepups, o.stepupConc))
			}
		}()
		measure(fmt.Sprintf("bridge fixed %.0f/s", rate), "open", workers, rate, func() *tally {
			return openLoop(ctx, s, g, rate, workers, limits{duration: o.duration, requests: o.requests})
		})
		<-done
		for _, r := range sus {
			l.stepups(r)
		}
		rep.StepUps = append(rep.StepUps, sus...)
	}
	if o.sustain > 0 && rate > 0 {
		workers := max(o.conc*4, 128)
		measure(fmt.Sprintf("bridge sustained %.0f/s for %s", rate, o.sustain), "open", workers, rate, func() *tally {
			return openLoop(ctx, s, g, rate, workers, limits{duration: o.sustain, requests: uint64(rate*o.sustain.Seconds()) + 1})
		})
	}
	if o.stepups > 0 && !o.skip["stepups"] {
		// And on an otherwise idle bridge: the floor.
		r := st.runStepUps(ctx, "acme", true, o.stepups, 1)
		r.Extra = map[string]string{"load": "none (idle bridge), one at a time"}
		l.stepups(r)
		rep.StepUps = append(rep.StepUps, r)
		r = globex.runStepUps(ctx, "globex", false, o.stepups, 1)
		r.Extra = map[string]string{"load": "none (idle bridge), one at a time"}
		l.stepups(r)
		rep.StepUps = append(rep.StepUps, r)
	}
	// Let the outbox settle, then what the endpoint got.
	time.Sleep(time.Second)
	rep.Endpoint = ep.counts()
	if v, err := readRSS(bp.pid()); err == nil {
		rep.Extra["bridge_rss_end_mb"] = float64(v) / (1 << 20)
	}
	if rc != nil {
		if m, err := usedMemory(ctx, rc); err == nil {
			rep.RedisMemory["used_memory_after"] = m
		}
		if n, err := rc.DBSize(ctx).Result(); err == nil {
			rep.RedisMemory["db_keys_after"] = n
		}
	}
	if err := scrapeMetrics(ctx, base, rep); err != nil {
		l.printf("metrics: %v", err)
	}
	rss.close()
	bp.stop()

	return finishReport(stdout, o, rep)
}

// measured runs do as one phase and returns its result and start: the CPU
// each of pids used and, when rc is set, the Redis commands it caused (bg,
// the idle background, subtracted).
func measured(ctx context.Context, rc *redis.Client, bg background, pids map[string]int, name, server, mode string, conc int, rate float64, do func() *tally) (phaseResult, time.Time) {
	var before cmdStats
	if rc != nil {
		before, _ = readCmdStats(ctx, rc)
	}
	cpu := startCPU(pids)
	t0 := time.Now()
	t := do()
	el := time.Since(t0)
	r := t.result(name, server, mode, conc, rate, el)
	r.CPU = cpu.cores()
	if rc != nil {
		after, _ := readCmdStats(ctx, rc)
		r.Redis = delta(before, after, t.ok, el.Seconds(), bg)
	}
	return r, t0
}

// finishReport writes the report as Markdown, and as JSON if asked.
func finishReport(stdout io.Writer, o runOptions, rep *report) error {
	writeReport(stdout, rep)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// startBaseline starts the bare-gin baseline (this program re-executed as
// baseline-server) on addr and waits until it answers.
func startBaseline(ctx context.Context, addr string, log io.Writer) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p, err := startProc("baseline", exec.Command(self, "baseline-server", "--listen", addr), log)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, p, "http://"+addr+"/healthz", 10*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func baselineOf(rep *report, platform string) float64 {
	for _, p := range rep.Phases {
		if p.Server == "baseline" && strings.HasSuffix(p.Name, "("+platform+")") {
			return p.Throughput
		}
	}
	return 0
}

// loopbackOnly refuses an address that is not on this machine's loopback:
// the load generator never sends load anywhere else.
func loopbackOnly(flagName, hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s %q: loopback addresses only (127.0.0.0/8, ::1, localhost)", flagName, hostport)
	}
	return nil
}

// lpClientID is the LivePerson app install of the generated brand.
const lpClientID = "lg-app-install"

// bridgeConfig is the generated configuration: two brands on the standard
// adapter, acme with the default confirm-code binding and globex with
// binding none (for the callback → effects latency), both logging in at
// the development IdP; the outbox delivers to the load generator's
// endpoint.
func bridgeConfig(o runOptions, addr, endpoint, issuer string) string {
	store := "  driver: memory\n"
	if o.store == "redis" {
		store = fmt.Sprintf("  driver: redis\n  redis:\n    addrs: [%q]\n    db: %d\n", o.redisAddr, o.redisDB)
	}
	var brands strings.Builder
	for _, b := range []struct{ id, env, binding string }{{"acme", "ACME", "confirm-code"}, {"globex", "GLOBEX", "none"}} {
		fmt.Fprintf(&brands, `
  - id: %[1]s
    api_keys: ["${LG_API_KEY}"]
    platforms:
      - type: standard
        webhook_secrets: ["${LG_%[2]s_WEBHOOK_SECRET}"]
        endpoint: %[3]s
        endpoint_secret: ${LG_ENDPOINT_SECRET}
    identity:
      type: oidc
      name: Loadgen IdP
      issuer: %[4]s
      client_id: stepup-bridge
      client_secret: ${LG_IDP_SECRET}
      algorithms: [RS256]
    step_up:
      binding: %[5]s
`, b.id, b.env, endpoint, issuer, b.binding)
	}
	// LivePerson: webhooks only (no agent user, no connector): the
	// bridge records sessions and messages; swaps are not resolved.
	fmt.Fprintf(&brands, `
  - id: lp
    platforms:
      - type: liveperson
        account_id: "%[1]s"
        client_id: %[2]s
        client_secret: ${LG_LP_SECRET}
    identity:
      type: oidc
      name: Loadgen IdP
      issuer: %[3]s
      client_id: stepup-bridge
      client_secret: ${LG_IDP_SECRET}
      algorithms: [RS256]
`, lpAccountID, lpClientID, issuer)
	return fmt.Sprintf(`# generated by stepup-loadgen
server:
  listen: %q
  public_url: "http://%s"
  log_format: json
  log_level: %s
store:
%s  outbox:
    min_backoff: 100ms
    max_backoff: 2s
brands:%s`, addr, addr, o.logLevel, store, brands.String())
}

// scrapeMetrics keeps a few of the bridge's own numbers.
func scrapeMetrics(ctx context.Context, base string, rep *report) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	want := map[string]string{
		"process_resident_memory_bytes": "bridge_rss_bytes_metrics", "go_goroutines": "bridge_goroutines",
		"go_memstats_heap_inuse_bytes": "bridge_heap_inuse_bytes", "process_cpu_seconds_total": "bridge_cpu_seconds",
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if k, ok := want[name]; ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			rep.Extra[k] = f
		}
	}
	return nil
}

// machine describes where the run happened.
func machine(ctx context.Context, o runOptions) map[string]string {
	m := map[string]string{"go": runtime.Version(), "cpus": strconv.Itoa(runtime.NumCPU()), "goos": runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m["cpu"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m["loadavg_at_start"] = strings.TrimSpace(string(b))
	}
	if o.store == "redis" {
		c := redis.NewClient(&redis.Options{Addr: o.redisAddr})
		defer c.Close()
		if v, err := infoField(ctx, c, "server", "redis_version"); err == nil {
			m["redis"] = strings.TrimSpace(v)
		}
	}
	return m
}

// runTarget drives an already running bridge (webhooks only).
func runTarget(ctx context.Context, o runOptions, stdout io.Writer) error {
	if o.targetKey == "" {
		return errors.New("--target needs --webhook-secret (or LOADGEN_WEBHOOK_SECRET)")
	}
	key, err := mustKeyErr(o.targetKey)
	if err != nil {
		return err
	}
	s := &sender{base: strings.TrimRight(o.target, "/"), client: newClient(o.conc), sign: &signer{standard: key}}
	g := newGenerator(o.targetBrand, "standard", "lg"+runID()+"t", o.active, o.perConv, o.verifyEvery, 1)
	g.existing = o.existing
	rep := &report{When: time.Now().UTC(), Machine: machine(ctx, runOptions{}), Options: map[string]string{"target": o.target}}
	closedLoop(ctx, s, g, o.conc, limits{duration: o.warmup})
	t0 := time.Now()
	t := closedLoop(ctx, s, g, o.conc, limits{duration: o.duration, requests: o.requests})
	rep.Phases = append(rep.Phases, t.result("target max", "bridge", "closed", o.conc, 0, time.Since(t0)))
	if o.rate > 0 {
		t0 = time.Now()
		t = openLoop(ctx, s, g, o.rate, max(o.conc*4, 128), limits{duration: o.duration, requests: o.requests})
		rep.Phases = append(rep.Phases, t.result(fmt.Sprintf("target fixed %.0f/s", o.rate), "bridge", "open", max(o.conc*4, 128), o.rate, time.Since(t0)))
	}
	writeReport(stdout, rep)
	return nil
}
