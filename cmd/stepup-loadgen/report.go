package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// logger prints progress to stderr.
type logger struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *logger) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s  %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (l *logger) phase(r phaseResult) {
	l.printf("%-28s %8.0f req/s  p50 %6.2f  p90 %6.2f  p99 %6.2f  max %7.2f ms  ok %d/%d  errors %v",
		r.Name, r.Throughput, r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max, r.OK, r.Sent, r.Errors)
}

func (l *logger) stepups(r stepUpResult) {
	l.printf("step-ups %s (%s) %v: %d ok, %d failed; verify→effects p50 %.1f p99 %.1f ms; callback→effects p50 %.1f p99 %.1f ms %s",
		r.Brand, r.Binding, r.Extra, r.Completed, r.Failed, r.Total.P50, r.Total.P99, r.FromCallback.P50, r.FromCallback.P99, codeLine(r))
	for k, v := range r.Failures {
		l.printf("  failure x%d: %s", v, k)
	}
}

func codeLine(r stepUpResult) string {
	if r.FromCode == nil {
		return ""
	}
	return fmt.Sprintf("; code→effects p50 %.1f p99 %.1f max %.1f ms", r.FromCode.P50, r.FromCode.P99, r.FromCode.Max)
}

// writeReport prints the run as Markdown (pasted into BENCHMARKS.md).
func writeReport(w io.Writer, rep *report) {
	fmt.Fprintf(w, "## stepup-loadgen run, %s\n\n", rep.When.Format(time.RFC3339))
	fmt.Fprintf(w, "machine: %s\n\n", kv(rep.Machine))
	fmt.Fprintf(w, "options: %s\n\n", kv(rep.Options))
	fmt.Fprintln(w, "| phase | mode | conns | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | ok / sent | errors |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
	for _, p := range rep.Phases {
		fmt.Fprintf(w, "| %s | %s | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %d / %d | %s |\n",
			p.Name, p.Mode, p.Concurrency, p.Throughput, p.Latency.P50, p.Latency.P90, p.Latency.P99, p.Latency.P999, p.Latency.Max, p.OK, p.Sent, errLine(p.Errors))
	}
	for _, k := range sortedKeys(rep.Ratios) {
		fmt.Fprintf(w, "\nbridge / baseline throughput (%s): **%.1f%%**\n", k, rep.Ratios[k]*100)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "\n%s\n", n)
	}
	fmt.Fprintln(w)
	for _, p := range rep.Phases {
		if d := p.FromDispatch; d != nil {
			fmt.Fprintf(w, "%s — latency from dispatch (the schedule's slot less the scheduler's own lateness; queueing for a worker still counts): p50 %.2f, p90 %.2f, p99 %.2f, p99.9 %.2f, max %.2f ms\n\n",
				p.Name, d.P50, d.P90, d.P99, d.P999, d.Max)
		}
		if p.Redis != nil {
			fmt.Fprintf(w, "%s — Redis: top-level commands/event %.3f (idle background %.0f/s subtracted), EVALSHA/event %.3f, all commands/event (incl. inside scripts) %.2f; Redis time per EVALSHA %.1f µs, Redis busy %.0f%% of a core; %s\n\n",
				p.Name, p.Redis.TopLevelPerEvent, p.Redis.BackgroundPerSec, p.Redis.EvalshaPerEvent, p.Redis.AllCommandsPerEvnt, p.Redis.EvalshaUsec, p.Redis.RedisBusy*100, cmdLine(p.Redis.Commands))
		}
		if p.RSS != nil {
			fmt.Fprintf(w, "%s — %s RSS: start %.1f MB, end %.1f MB, max %.1f MB, trend over the second half %+.2f MB/min (%d samples)\n\n",
				p.Name, p.Server, p.RSS.StartMB, p.RSS.EndMB, p.RSS.MaxMB, p.RSS.SlopeMBPerMin, p.RSS.Samples)
		}
		if len(p.CPU) > 0 {
			per := map[string]float64{}
			for k, v := range p.CPU {
				if p.Throughput > 0 {
					per[k] = v * 1e6 / p.Throughput
				}
			}
			fmt.Fprintf(w, "%s — CPU cores used: %s; CPU µs per request: %s\n\n", p.Name, floatLine2(p.CPU), floatLine(per))
		}
		fmt.Fprintf(w, "%s — events sent: %s\n\n", p.Name, countLine(p.ByKind))
	}
	if len(rep.StepUps) > 0 {
		fmt.Fprintln(w, "| step-ups | binding | load | done / failed | /verify → effects p50 / p99 / max ms | callback → effects p50 / p99 / max ms | code → effects p50 / p99 / max ms |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
		for _, s := range rep.StepUps {
			load := "during the fixed-rate phase"
			if s.Extra["load"] != "" {
				load = s.Extra["load"]
			}
			code := "—"
			if s.FromCode != nil {
				code = fmt.Sprintf("%.1f / %.1f / %.1f", s.FromCode.P50, s.FromCode.P99, s.FromCode.Max)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %d / %d | %.1f / %.1f / %.1f | %.1f / %.1f / %.1f | %s |\n", s.Brand, s.Binding, load, s.Completed, s.Failed,
				s.Total.P50, s.Total.P99, s.Total.Max, s.FromCallback.P50, s.FromCallback.P99, s.FromCallback.Max, code)
		}
		fmt.Fprintln(w)
	}
	if len(rep.Endpoint) > 0 {
		fmt.Fprintf(w, "brand endpoint received: %s\n\n", countLine64(rep.Endpoint))
	}
	if len(rep.Background) > 0 {
		fmt.Fprintf(w, "bridge idle background Redis commands/s: %s\n\n", floatLine(rep.Background))
	}
	if len(rep.RedisMemory) > 0 {
		fmt.Fprintf(w, "redis: %s\n\n", countLine64(rep.RedisMemory))
	}
	if len(rep.Extra) > 0 {
		fmt.Fprintf(w, "bridge: %s\n\n", anyLine(rep.Extra))
	}
}

func kv(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ", ")
}

func errLine(m map[string]uint64) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, "; ")
}

func countLine(m map[string]uint64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func countLine64(m map[string]int64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func floatLine(m map[string]float64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func floatLine2(m map[string]float64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func anyLine(m map[string]any) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		switch v := m[k].(type) {
		case float64:
			parts = append(parts, fmt.Sprintf("%s %.1f", k, v))
		default:
			parts = append(parts, fmt.Sprintf("%s %v", k, v))
		}
	}
	return strings.Join(parts, ", ")
}

// cmdLine lists the commands of a phase, most frequent first.
func cmdLine(m map[string]int64) string {
	type kv struct {
		k string
		v int64
	}
	var all []kv
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || (all[i].v == all[j].v && all[i].k < all[j].k) })
	var parts []string
	for _, x := range all {
		parts = append(parts, fmt.Sprintf("%s %d", x.k, x.v))
	}
	return "commands: " + strings.Join(parts, ", ")
}
