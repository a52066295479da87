package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/telemetry"
	"github.com/stepup-bridge/stepup-bridge/config"
)

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Parse(defaultConfig, os.LookupEnv)
	}
	return config.Load(path)
}

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", os.Getenv("STEPUP_CONFIG"), "configuration file (default: embedded; env STEPUP_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := telemetry.NewLogger(stderr, cfg.Server.LogFormat, cfg.Server.LogLevel)
	redisstore.UseLogger(log) // go-redis' own messages, structured and redacted
	for _, w := range cfg.Warnings {
		log.Warn("configuration", "path", w.Path, "warning", w.Message)
	}
	app, err := build(ctx, cfg, log, buildOptions{})
	if err != nil {
		return err
	}
	defer app.Close()
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return app.serve(ctx, ln)
}

func checkConfigCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", os.Getenv("STEPUP_CONFIG"), "configuration file to check")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("check-config needs --config FILE")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			for _, p := range ps {
				fmt.Fprintf(stderr, "%s: %s\n", p.Path, p.Message)
			}
			fmt.Fprintf(stderr, "%s: %d problem(s)\n", *path, len(ps))
			return errQuiet
		}
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s: %s\n", w.Path, w.Message)
	}
	fmt.Fprintf(stdout, "%s: ok (%d brand(s), store %s)\n", *path, len(cfg.Brands), cfg.Store.Driver)
	return nil
}
