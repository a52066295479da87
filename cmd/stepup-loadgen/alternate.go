package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// alternate measures the ratio the issue asks for on a host whose speed
// drifts: the baseline and the bridge take turns, round after round, each
// a fresh process on the same port measured as fast as possible for
// --duration after --warmup, and the ratio is taken from the sums of all
// rounds (requests over seconds), so a slow minute weighs on both sides.
// One run of the ordinary phases measures the two 20 s apart, and on this
// machine the bare-gin baseline alone moved by up to a quarter between
// runs a minute apart.
func alternate(ctx context.Context, o runOptions, rep *report, l *logger, addr string, rc *redis.Client,
	newGen func(platform, prefix string) *generator, sign *signer, startBridge func() (*proc, error), log io.Writer) error {
	a := &alternation{o: o, l: l, addr: addr, rc: rc, sign: sign, log: log, start: map[string]func() (*proc, error){
		"baseline": func() (*proc, error) { return startBaseline(ctx, addr, log) },
		"bridge":   startBridge,
	}}
	if rc != nil {
		if v, err := infoField(ctx, rc, "server", "process_id"); err == nil {
			a.redisPID, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	rep.Ratios = map[string]float64{}
	for _, pl := range o.platforms {
		// One stream of conversations per server across the rounds, as in
		// the ordinary phases.
		gens := map[string]*generator{"baseline": newGen(pl, "lg"+runID()+"ab"), "bridge": newGen(pl, "lg"+runID()+"ar")}
		var sums [2]struct{ ok, secs float64 } // baseline, bridge
		var perRound []string
		for round := 1; round <= o.alternate; round++ {
			var tput [2]float64
			for i, server := range []string{"baseline", "bridge"} {
				r, err := a.turn(ctx, server, gens[server], fmt.Sprintf("%s max (%s) round %d", server, pl, round))
				if err != nil {
					return err
				}
				rep.Phases = append(rep.Phases, r)
				l.phase(r)
				sums[i].ok += float64(r.OK)
				sums[i].secs += r.Seconds
				tput[i] = r.Throughput
			}
			if tput[0] > 0 {
				perRound = append(perRound, fmt.Sprintf("%.1f%%", 100*tput[1]/tput[0]))
			}
		}
		b, r := sums[0], sums[1]
		if b.ok > 0 && b.secs > 0 && r.secs > 0 {
			rep.Ratios[pl] = (r.ok / r.secs) / (b.ok / b.secs)
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: %d rounds, baseline %.0f req/s, bridge %.0f req/s (sums over the rounds); per round: %s",
				pl, o.alternate, b.ok/b.secs, r.ok/r.secs, strings.Join(perRound, ", ")))
		}
	}
	rep.Ratio = rep.Ratios[o.platforms[0]]
	return nil
}

// alternation is what the turns share.
type alternation struct {
	o        runOptions
	l        *logger
	addr     string
	rc       *redis.Client
	redisPID int
	bg       background // the bridge's idle Redis traffic, measured at its first start
	sign     *signer
	log      io.Writer
	start    map[string]func() (*proc, error)
}

// turn starts server ("baseline" or "bridge"), warms it up, measures it as
// fast as possible for --duration and stops it.
func (a *alternation) turn(ctx context.Context, server string, g *generator, name string) (phaseResult, error) {
	p, err := a.start[server]()
	if err != nil {
		return phaseResult{}, err
	}
	defer p.stop()
	bridge := server == "bridge"
	if bridge && a.rc != nil && a.bg.secs == 0 {
		a.l.printf("bridge idle for %s: background Redis traffic", a.o.background)
		if a.bg, err = measureBackground(ctx, a.rc, a.o.background); err != nil {
			return phaseResult{}, err
		}
	}
	s := &sender{base: "http://" + a.addr, client: newClient(a.o.conc), sign: a.sign}
	defer s.client.CloseIdleConnections()
	closedLoop(ctx, s, g, a.o.conc, limits{duration: a.o.warmup})
	pids := map[string]int{"server": p.pid(), "loadgen": os.Getpid()}
	var rc *redis.Client // Redis' commands: the bridge's turns only
	if bridge {
		pids["redis"] = a.redisPID
		rc = a.rc
	}
	r, _ := measured(ctx, rc, a.bg, pids, name, server, "closed", a.o.conc, 0, func() *tally {
		return closedLoop(ctx, s, g, a.o.conc, limits{duration: a.o.duration, requests: a.o.requests})
	})
	return r, nil
}
