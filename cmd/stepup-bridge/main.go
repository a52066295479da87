// Command stepup-bridge runs the step-up bridge: serve (default),
// check-config, demo and version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
)

// Set by the build (-ldflags "-X main.version=... -X main.commit=...").
var (
	version = "dev"
	commit  = ""
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errQuiet) {
			fmt.Fprintln(os.Stderr, "stepup-bridge:", err)
		}
		os.Exit(exitCode(err))
	}
}

// errQuiet marks an error already reported to the user.
var errQuiet = errors.New("reported")

func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 1
}

const usage = `usage: stepup-bridge [command] [flags]

commands:
  serve         run the service (default)           --config FILE
  check-config  validate a configuration            --config FILE
  outbox        list, replay or drop dead letters    list|stats|replay|drop --config FILE [--json]
  demo          playground on loopback: bridge,      [--listen 127.0.0.1:8080] [--port N]
                simulated platform, development IdP  [--store memory|redis] [--redis-addr HOST:PORT]
  version       print version, commit and Go version

Without --config, serve runs on the embedded default configuration
(memory store, no brands: health and metrics only).
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serveCmd(ctx, args, stderr)
	case "check-config":
		return checkConfigCmd(args, stdout, stderr)
	case "outbox":
		return outboxCmd(ctx, args, stdout, stderr)
	case "demo":
		return demoCmd(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "stepup-bridge %s (commit %s, %s)\n", version, buildCommit(), runtime.Version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func buildCommit() string {
	if commit != "" {
		return commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
