package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

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
	base := "http://" + addr
	redisPID := 0
	if rc != nil {
		if v, err := infoField(ctx, rc, "server", "process_id"); err == nil {
			redisPID, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	var bg background
	rep.Ratios = map[string]float64{}
	var notes []string
	for _, pl := range o.platforms {
		// One stream of conversations per server across the rounds, as in
		// the ordinary phases.
		gens := map[string]*generator{"baseline": newGen(pl, "lg"+runID()+"ab"), "bridge": newGen(pl, "lg"+runID()+"ar")}
		sums := map[string]*[2]float64{"baseline": {}, "bridge": {}} // ok, seconds
		var perRound []string
		for round := 1; round <= o.alternate; round++ {
			var tput [2]float64
			for i, server := range []string{"baseline", "bridge"} {
				var p *proc
				var err error
				if server == "baseline" {
					p, err = startBaseline(ctx, addr, log)
				} else {
					p, err = startBridge()
				}
				if err != nil {
					return err
				}
				if server == "bridge" && rc != nil && bg.secs == 0 {
					l.printf("bridge idle for %s: background Redis traffic", o.background)
					if bg, err = measureBackground(ctx, rc, o.background); err != nil {
						p.stop()
						return err
					}
				}
				s := &sender{base: base, client: newClient(o.conc), sign: sign}
				g := gens[server]
				closedLoop(ctx, s, g, o.conc, limits{duration: o.warmup})
				var before cmdStats
				if server == "bridge" && rc != nil {
					before, _ = readCmdStats(ctx, rc)
				}
				pids := map[string]int{"server": p.pid(), "loadgen": os.Getpid()}
				if server == "bridge" {
					pids["redis"] = redisPID
				}
				cpu := startCPU(pids)
				t0 := time.Now()
				t := closedLoop(ctx, s, g, o.conc, limits{duration: o.duration, requests: o.requests})
				el := time.Since(t0)
				r := t.result(fmt.Sprintf("%s max (%s) round %d", server, pl, round), server, "closed", o.conc, 0, el)
				r.CPU = cpu.cores()
				if server == "bridge" && rc != nil {
					after, _ := readCmdStats(ctx, rc)
					r.Redis = delta(before, after, t.ok, el.Seconds(), bg)
				}
				s.client.CloseIdleConnections()
				p.stop()
				rep.Phases = append(rep.Phases, r)
				l.phase(r)
				sums[server][0] += float64(r.OK)
				sums[server][1] += r.Seconds
				tput[i] = r.Throughput
			}
			if tput[0] > 0 {
				perRound = append(perRound, fmt.Sprintf("%.1f%%", 100*tput[1]/tput[0]))
			}
		}
		b, r := sums["baseline"], sums["bridge"]
		if b[0] > 0 && b[1] > 0 && r[1] > 0 {
			rep.Ratios[pl] = (r[0] / r[1]) / (b[0] / b[1])
			notes = append(notes, fmt.Sprintf("%s: %d rounds, baseline %.0f req/s, bridge %.0f req/s (sums over the rounds); per round: %s",
				pl, o.alternate, b[0]/b[1], r[0]/r[1], strings.Join(perRound, ", ")))
		}
	}
	rep.Ratio = rep.Ratios[o.platforms[0]]
	rep.Notes = append(rep.Notes, notes...)
	return nil
}
