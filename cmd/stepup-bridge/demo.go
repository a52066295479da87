package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/stepup-bridge/stepup-bridge/bridge/telemetry"
)

// demoCmd runs the playground: the real bridge, a simulated messaging
// platform and a development-only IdP, on loopback, until interrupted.
func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "loopback address of the playground page")
	port := fs.Int("port", 0, "port of the playground page (overrides the port in --listen)")
	store := fs.String("store", "memory", "state store: memory or redis")
	redisAddr := fs.String("redis-addr", "127.0.0.1:6379", "Redis address for --store redis")
	logLevel := fs.String("log-level", "warn", "log level of the bridge, platform and IdP: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("demo: unexpected argument %q", fs.Arg(0))
	}
	if *store != "memory" && *store != "redis" {
		return fmt.Errorf("demo: --store must be memory or redis, got %q", *store)
	}
	addr := *listen
	if *port != 0 {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("demo: --listen: %w", err)
		}
		addr = net.JoinHostPort(host, strconv.Itoa(*port))
	}
	log := telemetry.NewLogger(stderr, "text", *logLevel)
	d, err := startDemo(ctx, demoOptions{Listen: addr, Store: *store, RedisAddr: *redisAddr, Log: log})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(stdout, "stepup-bridge demo: the real bridge, a simulated messaging platform and a DEVELOPMENT ONLY identity provider, on this machine (%s store).\n\n    Open %s\n\nPress Ctrl+C to stop.\n", *store, d.URL)
	return d.Wait(ctx)
}
