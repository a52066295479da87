package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// cmdStats is INFO commandstats: calls per command. Redis counts the
// commands a Lua script runs as well as the EVALSHA that ran it, so
// "round trips" are the top-level commands: evalsha/eval and the plain
// commands a client sends.
type cmdStats map[string]int64

func readCmdStats(ctx context.Context, c *redis.Client) (cmdStats, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := cmdStats{}
	// usec of each command is kept under "<name>.usec".
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[strings.TrimPrefix(name, "cmdstat_")] = n
			}
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[strings.TrimPrefix(name, "cmdstat_")+".usec"] = n
			}
		}
	}
	return out, nil
}

func (a cmdStats) minus(b cmdStats) cmdStats {
	d := cmdStats{}
	for k, v := range a {
		if x := v - b[k]; x != 0 {
			d[k] = x
		}
	}
	// Our own probes are not the bridge's.
	delete(d, "info")
	delete(d, "info.usec")
	delete(d, "client|list")
	delete(d, "client|list.usec")
	return d
}

// calls drops the ".usec" entries.
func (d cmdStats) calls() cmdStats {
	out := cmdStats{}
	for k, v := range d {
		if !strings.HasSuffix(k, ".usec") {
			out[k] = v
		}
	}
	return out
}

// scriptInner are commands the store runs inside its Lua scripts. Of
// them only GET is also sent on its own, by the login pages (PeekTicket,
// BeginLogin's ticket lookup) and FinishLogin with binding none: those few
// are not counted as round trips; the webhook path sends none.
var scriptInner = map[string]bool{
	"get": true, "set": true, "zscore": true, "zadd": true, "zremrangebyscore": true, "pexpire": true,
	"exists": true, "xgroup|create": true, "xadd": true, "xpending": true, "xautoclaim": true,
	"xreadgroup": true, "zrangebyscore": true, "zrem": true, "xack": true, "xdel": true, "del": true,
	"hset": true, "hgetall": true, "xlen": true, "zcard": true, "xinfo|groups": true, "xrange": true,
	"xtrim": true, "zrange": true, "expire": true, "pexpireat": true, "hget": true, "hdel": true,
	"incr": true, "decr": true, "ttl": true, "pttl": true, "xclaim": true, "xinfo|stream": true,
	"hmget": true, "time": true, "zcount": true, "xgroup|delconsumer": true, "xinfo|consumers": true,
}

// redisDelta is what Redis did during a phase.
type redisDelta struct {
	Commands map[string]int64 `json:"commands"`
	// TopLevel counts evalsha/eval and commands outside scripts, minus the
	// idle background (outbox claim sweeps) measured before the run and
	// scaled to the phase's length.
	TopLevel           int64   `json:"top_level"`
	BackgroundPerSec   float64 `json:"background_top_level_per_sec"`
	TopLevelPerEvent   float64 `json:"top_level_per_event"`
	EvalshaPerEvent    float64 `json:"evalsha_per_event_minus_background"`
	AllCommandsPerEvnt float64 `json:"all_commands_per_event"`
	// EvalshaUsec is Redis's own time per EVALSHA (commandstats usec/calls,
	// scripts' inner commands included); RedisBusy the share of one core
	// Redis spent executing the phase's top-level commands.
	EvalshaUsec float64 `json:"evalsha_usec_per_call"`
	RedisBusy   float64 `json:"redis_busy_share_of_a_core"`
}

func topLevel(d cmdStats) int64 {
	var n int64
	for k, v := range d {
		if !scriptInner[k] {
			n += v
		}
	}
	return n
}

func scripts(d cmdStats) int64 { return d["evalsha"] + d["eval"] + d["evalsha_ro"] + d["eval_ro"] }

func delta(before, after cmdStats, events uint64, secs float64, bg background) *redisDelta {
	full := after.minus(before)
	d := full.calls()
	r := &redisDelta{Commands: d, TopLevel: topLevel(d), BackgroundPerSec: bg.topPerSec}
	if n := d["evalsha"]; n > 0 {
		r.EvalshaUsec = float64(full["evalsha.usec"]) / float64(n)
	}
	if secs > 0 {
		var us int64
		for k, v := range full {
			if strings.HasSuffix(k, ".usec") && !scriptInner[strings.TrimSuffix(k, ".usec")] {
				us += v
			}
		}
		r.RedisBusy = float64(us) / 1e6 / secs
	}
	if events > 0 {
		var all int64
		for _, v := range d {
			all += v
		}
		r.AllCommandsPerEvnt = float64(all) / float64(events)
		r.TopLevelPerEvent = (float64(r.TopLevel) - bg.topPerSec*secs) / float64(events)
		r.EvalshaPerEvent = (float64(scripts(d)) - bg.scriptsPerSec*secs) / float64(events)
	}
	return r
}

// background is the bridge's idle Redis traffic (the outbox workers'
// claim sweeps), per second.
type background struct {
	topPerSec     float64
	scriptsPerSec float64
	commands      cmdStats
	secs          float64
}

func measureBackground(ctx context.Context, c *redis.Client, d time.Duration) (background, error) {
	a, err := readCmdStats(ctx, c)
	if err != nil {
		return background{}, err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return background{}, ctx.Err()
	case <-time.After(d):
	}
	b, err := readCmdStats(ctx, c)
	if err != nil {
		return background{}, err
	}
	secs := time.Since(start).Seconds()
	dd := b.minus(a).calls()
	return background{topPerSec: float64(topLevel(dd)) / secs, scriptsPerSec: float64(scripts(dd)) / secs, commands: dd, secs: secs}, nil
}

// infoField reads one field of an INFO section.
func infoField(ctx context.Context, c *redis.Client, section, field string) (string, error) {
	info, err := c.Info(ctx, section).Result()
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO %s has no %s", section, field)
}

func usedMemory(ctx context.Context, c *redis.Client) (int64, error) {
	v, err := infoField(ctx, c, "memory", "used_memory")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}

// deletePrefix removes every key under prefix in c's database (SCAN, in
// batches; only for cleaning up after a run).
func deletePrefix(ctx context.Context, c *redis.Client, pattern string) (int, error) {
	n := 0
	iter := c.Scan(ctx, 0, pattern, 2000).Iterator()
	batch := make([]string, 0, 500)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := c.Unlink(ctx, batch...).Err(); err != nil {
			return err
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return n, err
	}
	return n, flush()
}
