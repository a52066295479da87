package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
)

const outboxUsage = `usage: stepup-bridge outbox <subcommand> [flags] [ID...]

subcommands:
  list            list dead letters, oldest first       [--limit N, default 100; 0 = all]
  stats           outbox depth, in flight, delayed, dead letters, oldest age
  replay ID...    put dead letters back in the outbox (fresh attempt count)
  replay --all    replay every dead letter
  drop ID...      delete dead letters for good

flags (any subcommand):
  --config FILE   the serving configuration (env STEPUP_CONFIG); store.driver must be redis
  --json          machine-readable output (one JSON document)

IDs are the ones "outbox list" prints ("<partition>:<stream id>").
`

// errMemoryOutbox explains why the memory store cannot be managed here.
var errMemoryOutbox = errors.New("store.driver is memory: the outbox and its dead letters live inside the serving process " +
	"and cannot be listed, replayed or dropped from another process (they are lost when it stops); " +
	"dead letters are logged at error level when they happen and counted by stepup_outbox_dead_letters. " +
	"Use store.driver: redis for an outbox that can be operated")

// outboxTimeout bounds one CLI operation against Redis.
const outboxTimeout = 30 * time.Second

// outboxOpts are the flags of every outbox subcommand.
type outboxOpts struct {
	config string
	json   bool
	all    bool
	limit  int
	ids    []string
}

func outboxCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, outboxUsage)
		if len(args) == 0 {
			return errors.New("outbox needs a subcommand")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list", "stats", "replay", "drop":
	default:
		fmt.Fprint(stderr, outboxUsage)
		return fmt.Errorf("unknown outbox subcommand %q", sub)
	}
	o, err := parseOutboxFlags(sub, args, stderr)
	if err != nil {
		return err
	}
	switch {
	case sub == "replay" && o.all == (len(o.ids) > 0):
		return errors.New("outbox replay needs dead letter IDs or --all (not both)")
	case sub == "drop" && len(o.ids) == 0:
		return errors.New("outbox drop needs dead letter IDs (there is no --all: drop one by one, on purpose)")
	case (sub == "list" || sub == "stats") && len(o.ids) > 0:
		return fmt.Errorf("outbox %s takes no IDs", sub)
	}

	store, closeStore, err := openOutbox(o.config)
	if err != nil {
		return err
	}
	defer closeStore()
	now := time.Now()
	switch sub {
	case "list":
		return outboxList(ctx, store, o, now, stdout)
	case "stats":
		return outboxStats(ctx, store, o, stdout)
	case "replay":
		return outboxReplay(ctx, store, o, stdout)
	default:
		return outboxDrop(ctx, store, o, stdout)
	}
}

// parseOutboxFlags accepts flags before, between and after IDs.
func parseOutboxFlags(sub string, args []string, stderr io.Writer) (outboxOpts, error) {
	var o outboxOpts
	fs := flag.NewFlagSet("outbox "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, outboxUsage) }
	fs.StringVar(&o.config, "config", os.Getenv("STEPUP_CONFIG"), "configuration file (env STEPUP_CONFIG)")
	fs.BoolVar(&o.json, "json", false, "JSON output")
	if sub == "replay" {
		fs.BoolVar(&o.all, "all", false, "replay every dead letter")
	}
	if sub == "list" {
		fs.IntVar(&o.limit, "limit", 100, "list at most N dead letters, oldest first (0: all)")
	}
	for {
		if err := fs.Parse(args); err != nil {
			return o, err
		}
		if fs.NArg() == 0 {
			break
		}
		o.ids = append(o.ids, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if o.config == "" {
		return o, errors.New("outbox needs --config FILE (the configuration the bridge serves with)")
	}
	return o, nil
}

// openOutbox opens the configured Redis store without serving anything.
func openOutbox(path string) (*redisstore.Store, func(), error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, nil, fmt.Errorf("configuration: %w", err)
	}
	if cfg.Store.Driver != "redis" {
		return nil, nil, errMemoryOutbox
	}
	client, err := redisstore.NewClient(cfg.Store.Redis)
	if err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	s, err := redisstore.New(client, redisstore.Options{
		SessionTTL: cfg.Store.SessionTTL, DedupeTTL: cfg.Store.DedupeTTL, ClaimTimeout: cfg.Store.Outbox.ClaimIdle,
		DeadLetterRetention: cfg.Store.Outbox.RetentionAfter,
		Logger:              slog.New(slog.DiscardHandler),
	})
	if err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	return s, func() { client.Close() }, nil
}

// deadLetterView is what the CLI shows of a dead letter: enough to decide
// (effect, where, how often, why, how old), never the message text, the
// identity or anything else the entry carries for the platform (a login
// link is a secret; an identity is personal data).
type deadLetterView struct {
	ID           string    `json:"id"`
	EntryID      string    `json:"entry_id"` // the idempotency key sent to the platform
	Effect       string    `json:"effect"`
	Brand        string    `json:"brand"`
	Platform     string    `json:"platform"`
	Conversation string    `json:"conversation"`
	Attempts     int       `json:"attempts"`
	Reason       string    `json:"reason"`
	CreatedAt    time.Time `json:"created_at,omitzero"`
	BuriedAt     time.Time `json:"buried_at,omitzero"`
	AgeSeconds   int64     `json:"age_seconds"`
}

func viewOf(d redisstore.DeadLetter, now time.Time) deadLetterView {
	v := deadLetterView{
		ID: d.ID, EntryID: d.Entry.ID, Effect: string(d.Entry.Effect), Brand: d.Entry.Key.Brand,
		Platform: d.Entry.Platform, Conversation: d.Entry.Key.Conversation, Attempts: d.Attempts,
		Reason: d.Reason, CreatedAt: d.Entry.CreatedAt, BuriedAt: d.At,
	}
	if born := d.Entry.CreatedAt; !born.IsZero() && now.After(born) {
		v.AgeSeconds = int64(now.Sub(born) / time.Second)
	}
	return v
}

func outboxList(ctx context.Context, s *redisstore.Store, o outboxOpts, now time.Time, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, outboxTimeout)
	defer cancel()
	dls, err := s.DeadLetters(ctx, o.limit)
	if err != nil {
		return err
	}
	total := int64(len(dls))
	if o.limit > 0 && len(dls) == o.limit {
		st, err := s.OutboxStats(ctx)
		if err != nil {
			return err
		}
		total = max(st.Dead, total)
	}
	views := make([]deadLetterView, 0, len(dls))
	for _, d := range dls {
		views = append(views, viewOf(d, now))
	}
	if o.json {
		return writeJSON(w, struct {
			DeadLetters []deadLetterView `json:"dead_letters"`
			Total       int64            `json:"total"`
		}{views, total})
	}
	if len(views) == 0 {
		fmt.Fprintln(w, "no dead letters")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEFFECT\tBRAND\tPLATFORM\tCONVERSATION\tATTEMPTS\tAGE\tREASON")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", v.ID, v.Effect, printable(v.Brand, 32), printable(v.Platform, 16),
			printable(v.Conversation, 40), v.Attempts, age(time.Duration(v.AgeSeconds)*time.Second), printable(v.Reason, 120))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if total > int64(len(views)) {
		fmt.Fprintf(w, "showing the oldest %d of %d dead letters (--limit 0 for all)\n", len(views), total)
	} else {
		fmt.Fprintf(w, "%d dead letter(s)\n", len(views))
	}
	fmt.Fprintln(w, "replay with: stepup-bridge outbox replay --config FILE ID... | --all")
	return nil
}

func outboxStats(ctx context.Context, s *redisstore.Store, o outboxOpts, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, outboxTimeout)
	defer cancel()
	st, err := s.OutboxStats(ctx)
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(w, struct {
			Depth            int64 `json:"depth"`
			Ready            int64 `json:"ready"`
			InFlight         int64 `json:"in_flight"`
			Delayed          int64 `json:"delayed"`
			DeadLetters      int64 `json:"dead_letters"`
			OldestAgeSeconds int64 `json:"oldest_age_seconds"`
		}{st.Depth(), st.Ready, st.InFlight, st.Delayed, st.Dead, int64(st.OldestAge / time.Second)})
	}
	fmt.Fprintf(w, "depth %d (ready %d, of which in flight %d; waiting for a retry %d)\ndead letters %d\noldest entry %s\n",
		st.Depth(), st.Ready, st.InFlight, st.Delayed, st.Dead, age(st.OldestAge))
	return nil
}

// settleResult is the outcome of replay or drop for one ID.
type settleResult struct {
	ID    string `json:"id"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// replayPage is how many dead letters replay --all reads at a time.
const replayPage = 500

func outboxReplay(ctx context.Context, s *redisstore.Store, o outboxOpts, w io.Writer) error {
	if !o.all {
		r := settleEach(ctx, o.ids, s.Replay)
		return r.report("replayed", o.json, w)
	}
	// Page by page, oldest first, at most as many as there were at the
	// start: an entry that fails again is buried again under a new ID and
	// must not be replayed in a loop.
	sctx, cancel := context.WithTimeout(ctx, outboxTimeout)
	st, err := s.OutboxStats(sctx)
	cancel()
	if err != nil {
		return err
	}
	var all settled
	for budget := st.Dead; budget > 0 && all.outage == nil; {
		pctx, cancel := context.WithTimeout(ctx, outboxTimeout)
		dls, err := s.DeadLetters(pctx, int(min(budget, replayPage)))
		if err != nil {
			cancel()
			return err
		}
		if len(dls) == 0 {
			cancel()
			break
		}
		ids := make([]string, len(dls))
		for i, d := range dls {
			ids[i] = d.ID
		}
		r := settleEach(pctx, ids, s.Replay)
		cancel()
		all.results = append(all.results, r.results...)
		all.failed += r.failed
		all.outage = r.outage
		budget -= int64(len(dls))
	}
	return all.report("replayed", o.json, w)
}

func outboxDrop(ctx context.Context, s *redisstore.Store, o outboxOpts, w io.Writer) error {
	r := settleEach(ctx, o.ids, s.Drop)
	return r.report("dropped", o.json, w)
}

// settled is the outcome of replay or drop over several IDs.
type settled struct {
	results []settleResult
	failed  int
	outage  error // the store failed: the rest was not tried
}

// settleEach applies op to every id. A store outage stops at once: the
// rest would fail the same way.
func settleEach(ctx context.Context, ids []string, op func(context.Context, string) error) settled {
	ctx, cancel := context.WithTimeout(ctx, outboxTimeout)
	defer cancel()
	var r settled
	for _, id := range ids {
		err := op(ctx, id)
		res := settleResult{ID: id, OK: err == nil}
		if err != nil {
			r.failed++
			res.Error = err.Error()
			if errors.Is(err, bridge.ErrNotFound) {
				res.Error = "no such dead letter (already replayed or dropped, or past retention)"
			}
		}
		r.results = append(r.results, res)
		if err != nil && !errors.Is(err, bridge.ErrNotFound) {
			r.outage = err
			break
		}
	}
	return r
}

// report prints the outcome; it is an error if anything failed.
func (r settled) report(verb string, asJSON bool, w io.Writer) error {
	if asJSON {
		if err := writeJSON(w, struct {
			Results []settleResult `json:"results"`
		}{append([]settleResult{}, r.results...)}); err != nil {
			return err
		}
	} else {
		for _, res := range r.results {
			if res.OK {
				fmt.Fprintf(w, "%s %s\n", verb, res.ID)
			} else {
				fmt.Fprintf(w, "failed %s: %s\n", res.ID, res.Error)
			}
		}
		fmt.Fprintf(w, "%d %s, %d failed\n", len(r.results)-r.failed, verb, r.failed)
	}
	switch {
	case r.outage != nil:
		return fmt.Errorf("stopped after %d: %w", len(r.results), r.outage)
	case r.failed > 0:
		return errQuiet
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printable keeps a table cell on one line and bounded: ids and reasons
// come from outside and may hold anything.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	if s == "" {
		return "-"
	}
	return s
}

// age is a duration for people: 42s, 7m, 3h12m, 2d4h.
func age(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}
