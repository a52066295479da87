package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stepup-bridge/stepup-bridge/adapters"
	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/httpapi"
	"github.com/stepup-bridge/stepup-bridge/bridge/memstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/telemetry"
	"github.com/stepup-bridge/stepup-bridge/config"
)

//go:embed default.yaml
var defaultConfig []byte

// App is a wired bridge: store, brands, service, router.
type App struct {
	Config  *config.Config
	Log     *slog.Logger
	Metrics *telemetry.Metrics
	Store   bridge.Store
	Service *bridge.Service
	Handler *gin.Engine
	closers []func()
}

// buildOptions are what tests and the demo inject.
type buildOptions struct {
	Clock      bridge.Clock
	HTTPClient *http.Client // outbound calls to IdPs (tests trust their own CAs)
	// RedisPrefix isolates the Redis keys of one App (tests sharing a
	// server); "" is the store's default. The configuration has no such key.
	RedisPrefix string
}

// build wires an App from a validated configuration.
func build(ctx context.Context, cfg *config.Config, log *slog.Logger, o buildOptions) (*App, error) {
	if o.Clock == nil {
		o.Clock = bridge.SystemClock{}
	}
	a := &App{Config: cfg, Log: log, Metrics: telemetry.NewMetrics()}
	store, closeStore, err := newStore(cfg.Store, o.Clock, o.RedisPrefix, log)
	if err != nil {
		return nil, err
	}
	a.Store = store
	a.closers = append(a.closers, closeStore)

	publicURL := strings.TrimRight(cfg.Server.PublicURL, "/")
	deps := adapters.Deps{Logger: log, Clock: o.Clock, HTTPClient: o.HTTPClient, Outbox: cfg.Store.Outbox}
	var brands []*bridge.Brand
	apiKeys := map[string][]string{}
	for i, bc := range cfg.Brands {
		b, closeBrand, err := buildBrand(ctx, bc, publicURL, deps)
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("brands[%d] (%s): %w", i, bc.ID, err)
		}
		a.closers = append(a.closers, closeBrand)
		brands = append(brands, b)
		// The IdP keeps background work (discovery retries, JWK Set refresh).
		if c, ok := b.Identity.(interface{ Close() }); ok {
			a.closers = append(a.closers, c.Close)
		}
		for _, k := range bc.APIKeys {
			apiKeys[bc.ID] = append(apiKeys[bc.ID], k.Value)
		}
	}
	a.Service, err = bridge.NewService(bridge.Options{Store: store, Brands: brands, PublicURL: publicURL, Clock: o.Clock, Logger: log, Recorder: a.Metrics})
	if err != nil {
		a.Close()
		return nil, err
	}
	a.Handler, err = httpapi.New(httpapi.Options{
		Service: a.Service, Logger: log, Metrics: a.Metrics, PublicURL: publicURL, APIKeys: apiKeys,
		MaxBodyBytes: cfg.Server.MaxBodyBytes, TrustedProxies: cfg.Server.TrustedProxies, Clock: o.Clock,
	})
	if err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func newStore(sc config.Store, clock bridge.Clock, redisPrefix string, log *slog.Logger) (bridge.Store, func(), error) {
	switch sc.Driver {
	case "redis":
		client, err := redisstore.NewClient(sc.Redis)
		if err != nil {
			return nil, nil, fmt.Errorf("store: %w", err)
		}
		s, err := redisstore.New(client, redisstore.Options{Clock: clock, Prefix: redisPrefix, SessionTTL: sc.SessionTTL, DedupeTTL: sc.DedupeTTL, ClaimTimeout: sc.Outbox.ClaimIdle, DeadLetterRetention: sc.Outbox.RetentionAfter, Logger: log})
		if err != nil {
			client.Close()
			return nil, nil, fmt.Errorf("store: %w", err)
		}
		return s, func() { client.Close() }, nil
	default:
		log.Warn("using the in-memory store: state is lost on restart and not shared between replicas")
		return memstore.New(memstore.Options{Clock: clock, SessionTTL: sc.SessionTTL, DedupeTTL: sc.DedupeTTL, ClaimTimeout: sc.Outbox.ClaimIdle}), func() {}, nil
	}
}

// buildBrand wires one brand; the returned func releases what its
// login-event sources keep running (JWK Set refreshes).
func buildBrand(ctx context.Context, bc config.Brand, publicURL string, deps adapters.Deps) (*bridge.Brand, func(), error) {
	b := &bridge.Brand{ID: bc.ID, Platforms: map[string]bridge.Platform{}}
	for _, pc := range bc.Platforms {
		p, err := adapters.NewPlatform(ctx, pc, deps)
		if err != nil {
			return nil, nil, fmt.Errorf("platform %s: %w", pc.Type, err)
		}
		b.Platforms[pc.Type] = p
	}
	pol, err := policy(bc.StepUp)
	if err != nil {
		return nil, nil, err
	}
	b.Policy = pol
	idp, err := adapters.NewIdentity(ctx, bc.Identity, publicURL+"/callback/"+bc.ID, deps)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: %w", err)
	}
	b.Identity = idp
	events, closeEvents, err := adapters.NewLoginEvents(ctx, bc.Identity, deps)
	if err != nil {
		if c, ok := idp.(interface{ Close() }); ok {
			c.Close()
		}
		return nil, nil, fmt.Errorf("identity.login_events: %w", err)
	}
	b.LoginEvents = events
	return b, closeEvents, nil
}

func policy(s config.StepUp) (bridge.Policy, error) {
	link, err := template.New("link_message").Option("missingkey=error").Parse(s.LinkMessage)
	if err != nil {
		return bridge.Policy{}, fmt.Errorf("step_up.link_message: %w", err)
	}
	note, err := template.New("notify_message").Option("missingkey=error").Parse(s.NotifyMessage)
	if err != nil {
		return bridge.Policy{}, fmt.Errorf("step_up.notify_message: %w", err)
	}
	return bridge.Policy{
		LinkTTL: s.LinkTTL, TxnTTL: 10 * time.Minute, Binding: s.Binding, CodeTTL: s.CodeTTL, CodeLength: s.CodeLength,
		CodeAttempts: s.CodeAttempts, MaxLinks: s.MaxLinks, Channels: s.Channels, AgentCommand: s.AgentCommand,
		LinkMessage: link, NotifyAgents: s.NotifyAgents, NotifyMessage: note, ConsumerMessage: s.ConsumerMessage, Skill: s.Skill,
		LoginWindow: s.LoginWindow,
		CodeFeedback: map[bridge.CodeResult]string{
			bridge.CodeMismatch: s.WrongCodeMessage, bridge.CodeLocked: s.CodeLockedMessage, bridge.CodeExpired: s.CodeExpiredMessage,
		},
	}, nil
}

// Close releases the store and adapters.
func (a *App) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// serve runs the HTTP server and the outbox workers until ctx ends, then
// shuts down gracefully: stop accepting, finish requests, stop workers.
func (a *App) serve(ctx context.Context, ln net.Listener) error {
	sc := a.Config.Server
	srv := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: sc.ReadHeaderTimeout,
		ReadTimeout:       sc.ReadTimeout,
		WriteTimeout:      sc.WriteTimeout,
		IdleTimeout:       sc.IdleTimeout,
		MaxHeaderBytes:    sc.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ob := a.Config.Store.Outbox
		host, _ := os.Hostname()
		a.Service.RunWorkers(workCtx, bridge.DeliveryPolicy{Workers: ob.Workers, MaxAttempts: ob.MaxAttempts, MinBackoff: ob.MinBackoff, MaxBackoff: ob.MaxBackoff, CallTimeout: ob.CallTimeout, Lease: ob.ClaimIdle}, fmt.Sprintf("%s-%d", host, os.Getpid()))
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.watchOutbox(workCtx, outboxStatsInterval)
	}()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.Log.Info("stepup-bridge listening", "addr", ln.Addr().String(), "public_url", a.Config.Server.PublicURL, "brands", len(a.Config.Brands), "store", a.Config.Store.Driver, "version", version)

	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		a.Log.Info("shutting down")
		// Workers stop claiming now and finish their calls in flight while
		// the server drains: the two waits overlap, within the grace period.
		stopWork()
		sctx, cancel := context.WithTimeout(context.Background(), sc.ShutdownTimeout)
		err = srv.Shutdown(sctx)
		cancel()
	}
	stopWork()
	wg.Wait()
	a.reportUndelivered()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
