package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stepup-bridge/stepup-bridge/adapters/devidp"
	"github.com/stepup-bridge/stepup-bridge/cmd/stepup-bridge/playground"
	"github.com/stepup-bridge/stepup-bridge/config"
)

// The demo's fixed names: one brand on the standard platform.
const (
	demoBrand    = "demo"
	demoClientID = "stepup-bridge-demo"
)

// demoOptions configure the demo stack.
type demoOptions struct {
	// Listen is the playground page's address; it must be loopback. The
	// bridge and the IdP get free ports on the same host.
	Listen    string
	Store     string // memory or redis
	RedisAddr string
	Log       *slog.Logger
	// PollEvery overrides the playground's status polling (tests).
	PollEvery time.Duration
}

// demoStack is a running demo: the real bridge (built by build() from a
// generated configuration, with its store, outbox workers and signature
// checks), the simulated platform with its page, and the development IdP.
type demoStack struct {
	URL        string // the one URL a person opens
	BridgeURL  string
	Issuer     string
	Clock      *playground.Clock
	App        *App
	Playground *playground.Server
	IdP        *devidp.Server

	stop    context.CancelFunc
	wg      sync.WaitGroup
	serveMu sync.Mutex
	errs    []error
}

var errNotLoopback = errors.New("the demo listens on loopback only (127.0.0.1, ::1 or localhost)")

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func demoSecret(n int, prefix string) string {
	b := make([]byte, n)
	rand.Read(b)
	return prefix + base64.StdEncoding.EncodeToString(b)
}

// startDemo starts everything and returns once the page can be opened.
func startDemo(ctx context.Context, o demoOptions) (_ *demoStack, err error) {
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	if !isLoopbackHost(host) {
		return nil, fmt.Errorf("--listen %s: %w", o.Listen, errNotLoopback)
	}
	log := o.Log
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()
	listen := func(addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		closers = append(closers, func() { ln.Close() })
		return ln, nil
	}
	pageLn, err := listen(o.Listen)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%w (another program has port %s: choose one with --port)", err, o.Listen)
	}
	if err != nil {
		return nil, err
	}
	// The bridge and the IdP share the page's loopback address family.
	ip := pageLn.Addr().(*net.TCPAddr).IP.String()
	bridgeLn, err := listen(net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, err
	}
	idpLn, err := listen(net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, err
	}
	_, pagePort, _ := net.SplitHostPort(pageLn.Addr().String())
	// Keep the name the person typed (localhost or an address) in the URL.
	pageURL := "http://" + net.JoinHostPort(host, pagePort) + "/"
	bridgeURL := "http://" + bridgeLn.Addr().String()

	secrets := map[string]string{
		"DEMO_WEBHOOK_SECRET":  demoSecret(32, "whsec_"),
		"DEMO_ENDPOINT_SECRET": demoSecret(32, "whsec_"),
		"DEMO_CLIENT_SECRET":   demoSecret(24, ""),
		"DEMO_API_KEY":         demoSecret(32, ""),
	}
	clock := &playground.Clock{}
	play, err := playground.New(playground.Options{
		BridgeURL: bridgeURL, Brand: demoBrand, Platform: "standard",
		WebhookSecret: secrets["DEMO_WEBHOOK_SECRET"], EndpointSecret: secrets["DEMO_ENDPOINT_SECRET"], APIKey: secrets["DEMO_API_KEY"],
		AgentCommand: "/verify", IdPName: "Demo IdP (development only)", Clock: clock, Logger: log, PollEvery: o.PollEvery,
	})
	if err != nil {
		return nil, err
	}
	idp, err := devidp.Start(devidp.Options{
		Listener: idpLn, ClientID: demoClientID, ClientSecret: secrets["DEMO_CLIENT_SECRET"],
		RedirectURIs: []string{bridgeURL + "/callback/" + demoBrand}, Now: clock.Now, Logger: log,
		OnEvent: func(e devidp.Event) { play.IdPEvent(e.Kind, e.Text) },
	})
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { idp.Close() })

	cfg, err := config.Parse([]byte(demoConfig(bridgeLn.Addr().String(), bridgeURL, "http://"+pageLn.Addr().String()+playground.EndpointPath, idp.Issuer(), o)), func(name string) (string, bool) {
		v, ok := secrets[name]
		return v, ok
	})
	if err != nil {
		return nil, fmt.Errorf("demo configuration: %w", err)
	}
	opts := buildOptions{Clock: clock}
	if o.Store == "redis" {
		// Keys of its own: a demo must never claim another bridge's outbox.
		b := make([]byte, 4)
		rand.Read(b)
		opts.RedisPrefix = "stepup-demo-" + hex.EncodeToString(b)
	}
	app, err := build(ctx, cfg, log, opts)
	if err != nil {
		return nil, err
	}
	closers = append(closers, app.Close)

	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	d := &demoStack{URL: pageURL, BridgeURL: bridgeURL, Issuer: idp.Issuer(), Clock: clock, App: app, Playground: play, IdP: idp, stop: stop}
	page := &http.Server{
		Handler: play.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
		// Requests end with the demo: the live-update streams would hold a
		// graceful shutdown open otherwise.
		BaseContext: func(net.Listener) context.Context { return runCtx },
	}
	d.run(func() error { return app.serve(runCtx, bridgeLn) })
	d.run(func() error {
		go func() {
			<-runCtx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			page.Shutdown(sctx)
		}()
		if err := page.Serve(pageLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	d.run(func() error { play.Run(runCtx); return nil })
	return d, nil
}

func (d *demoStack) run(f func() error) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := f(); err != nil {
			d.serveMu.Lock()
			d.errs = append(d.errs, err)
			d.serveMu.Unlock()
			d.stop() // one part down: stop the rest
		}
	}()
}

// Wait blocks until ctx ends or a part of the demo fails, then shuts
// everything down.
func (d *demoStack) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-ctx.Done():
	case <-done:
	}
	return d.Close()
}

// Close shuts the demo down and reports what failed while it ran.
func (d *demoStack) Close() error {
	d.stop()
	d.wg.Wait()
	d.App.Close()
	d.IdP.Close()
	d.serveMu.Lock()
	defer d.serveMu.Unlock()
	return errors.Join(d.errs...)
}

// demoConfig is the bridge's configuration for the demo: one brand on the
// standard platform, the development IdP, the safe confirm-code binding.
// Secrets are ${NAME} references resolved from the generated values.
func demoConfig(listen, publicURL, endpoint, issuer string, o demoOptions) string {
	store := "  driver: memory\n"
	if o.Store == "redis" {
		store = fmt.Sprintf("  driver: redis\n  redis:\n    addrs: [%q]\n", o.RedisAddr)
	}
	return fmt.Sprintf(`# Generated by stepup-bridge demo.
server:
  listen: %q
  public_url: %q
  log_format: text
store:
%s  # A demo leaves little behind in a shared Redis.
  session_ttl: 2h
  dedupe_ttl: 2h
  outbox:
    workers: 2
    min_backoff: 500ms
    max_backoff: 10s
brands:
  - id: %s
    api_keys: ["${DEMO_API_KEY}"]
    platforms:
      - type: standard
        webhook_secrets: ["${DEMO_WEBHOOK_SECRET}"]
        endpoint: %q
        endpoint_secret: "${DEMO_ENDPOINT_SECRET}"
    identity:
      type: oidc
      name: "Demo IdP (development only)"
      issuer: %q
      client_id: %q
      client_secret: "${DEMO_CLIENT_SECRET}"
      algorithms: [RS256]
      claims:
        extra:
          customer_id: customer_id
    step_up:
      agent_command: /verify
      link_message: "To continue, please verify your identity here: {{.URL}}"
      notify_message: 'Stepped up: {{.Name}} (customer id {{index .Claims "customer_id"}}) verified via {{.Provider}} with {{.AMRText}} at {{.VerifiedAt}}'
      consumer_message: "Thanks, you are now verified. Your conversation continues here."
      skill: verified-customers
`, listen, publicURL, store, demoBrand, endpoint, issuer, demoClientID)
}
