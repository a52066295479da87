// Command stepup-loadgen measures a stepup-bridge under realistic load and,
// in the same run, the bare HTTP stack it is built on.
//
//	stepup-loadgen run       baseline (bare gin) then bridge, same port and payloads
//	stepup-loadgen populate  N tracked conversations in Redis, with INFO memory
//	stepup-loadgen cleanup   delete the run's keys from the Redis database
//
// Everything is on loopback. The bridge runs as a subprocess: the real
// binary (built from this repository with `go build`, or --bridge-bin), its
// configuration generated into a temporary directory (store redis on
// --redis, database --redis-db, so the test suites' keys in database 0 are
// never touched). The baseline runs as a subprocess too (this binary,
// re-executed as `stepup-loadgen baseline-server`), so both servers are a
// process of their own measured by the same client. The brand endpoint that
// receives the bridge's outbox calls and the development IdP for the
// step-up flows run inside the load generator.
//
// See BENCHMARKS.md for the measured numbers and how they were taken.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "stepup-loadgen:", err)
		os.Exit(1)
	}
}

const usage = `usage: stepup-loadgen [command] [flags]

commands:
  run        baseline and bridge, side by side (default)
  populate   write tracked conversations to Redis and report INFO memory
  cleanup    delete the bridge's keys (stepup:*) from --redis-db
  baseline-server  the bare gin server (started by run)

stepup-loadgen COMMAND -h lists the flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runCmd(ctx, args, stdout, stderr)
	case "populate":
		return populateCmd(ctx, args, stdout, stderr)
	case "cleanup":
		return cleanupCmd(ctx, args, stdout, stderr)
	case "baseline-server":
		fs := flag.NewFlagSet("baseline-server", flag.ContinueOnError)
		fs.SetOutput(stderr)
		listen := fs.String("listen", "127.0.0.1:18080", "loopback address")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return serveBaseline(ctx, *listen)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}
