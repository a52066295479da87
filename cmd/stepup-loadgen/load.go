package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// newClient is the load client: keep-alive connections to one loopback
// server, no compression, no HTTP/2, no redirects.
func newClient(conns int) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// sender sends webhooks from a generator to one base URL.
type sender struct {
	base   string
	client *http.Client
	sign   *signer
}

// send signs and posts r; it returns the status (0 on a transport error)
// and reads the whole answer so the connection is reused.
func (s *sender) send(ctx context.Context, r request) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+r.path, bytes.NewReader(r.body))
	if err != nil {
		return 0, nil, err
	}
	req.Header = s.sign.header(&r, time.Now())
	req.ContentLength = int64(len(r.body))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, body, err
}

// phaseResult is one measured phase.
type phaseResult struct {
	Name        string            `json:"name"`
	Server      string            `json:"server"` // baseline | bridge
	Mode        string            `json:"mode"`   // closed (as fast as possible) | open (fixed rate)
	Concurrency int               `json:"concurrency"`
	TargetRate  float64           `json:"target_rate,omitempty"`
	Seconds     float64           `json:"seconds"`
	Sent        uint64            `json:"sent"`
	OK          uint64            `json:"ok"`
	Errors      map[string]uint64 `json:"errors,omitempty"`
	Throughput  float64           `json:"throughput_rps"`
	Latency     summary           `json:"latency"`
	// FromDispatch (open loop only) is latency from the moment the
	// scheduler handed the request to the workers, not from its slot on the
	// schedule: it leaves out the scheduler's own lateness (its 1 ms tick;
	// Go sleeps shorter than 1 ms last ~1 ms) but keeps any wait for a free
	// worker, i.e. a slow server still shows.
	FromDispatch *summary          `json:"latency_from_dispatch,omitempty"`
	ByKind       map[string]uint64 `json:"by_kind"`
	Redis        *redisDelta       `json:"redis,omitempty"`
	RSS          *rssSummary       `json:"rss,omitempty"`
	// CPU is the cores each process used during the phase (of 2 here);
	// "steal (host)" is the cores the hypervisor gave other guests.
	CPU   map[string]float64 `json:"cpu_cores,omitempty"`
	Extra map[string]float64 `json:"extra,omitempty"`
}

// tally is one worker's counts.
type tally struct {
	h      *hist
	hd     *hist // open loop: from dispatch
	sent   uint64
	ok     uint64
	errs   map[string]uint64
	byKind map[string]uint64
}

func newTally() *tally {
	return &tally{h: newHist(), hd: newHist(), errs: map[string]uint64{}, byKind: map[string]uint64{}}
}

func (t *tally) add(o *tally) {
	t.h.merge(o.h)
	t.hd.merge(o.hd)
	t.sent += o.sent
	t.ok += o.ok
	for k, v := range o.errs {
		t.errs[k] += v
	}
	for k, v := range o.byKind {
		t.byKind[k] += v
	}
}

// one sends r and records its latency from intended (and, when dispatched
// is not zero, from dispatched too).
func (t *tally) one(ctx context.Context, s *sender, r request, intended, dispatched time.Time) {
	code, _, err := s.send(ctx, r)
	d := time.Since(intended)
	t.sent++
	t.byKind[r.kind]++
	switch {
	case err != nil && ctx.Err() != nil:
		t.sent-- // cut off by the end of the phase: not a result
		t.byKind[r.kind]--
		return
	case err != nil:
		t.errs["transport: "+errKind(err)]++
	case code != http.StatusOK:
		t.errs[fmt.Sprintf("status %d", code)]++
	default:
		t.ok++
	}
	t.h.record(d)
	if !dispatched.IsZero() {
		t.hd.record(time.Since(dispatched))
	}
}

func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op
	}
	return "other"
}

// limits bound a phase: whichever comes first.
type limits struct {
	duration time.Duration
	requests uint64 // 0 = no count limit
}

// closedLoop sends as fast as possible from conc workers, each waiting for
// its answer before sending again; latency is per request.
func closedLoop(ctx context.Context, s *sender, g *generator, conc int, lim limits) *tally {
	ctx, cancel := context.WithTimeout(ctx, lim.duration)
	defer cancel()
	var issued atomic.Uint64
	tallies := make([]*tally, conc)
	var wg sync.WaitGroup
	for w := range conc {
		tallies[w] = newTally()
		wg.Add(1)
		go func(t *tally) {
			defer wg.Done()
			for ctx.Err() == nil {
				if lim.requests > 0 && issued.Add(1) > lim.requests {
					return
				}
				now := time.Now()
				t.one(ctx, s, g.nextRequest(now), now, time.Time{})
			}
		}(tallies[w])
	}
	wg.Wait()
	all := newTally()
	for _, t := range tallies {
		all.add(t)
	}
	return all
}

// openLoop sends at a fixed rate whatever the answers do (no coordinated
// omission): each request has an intended start time on the schedule, and
// its latency is measured from that time, so time spent queued behind a
// slow server counts. workers bounds the requests in flight; when all are
// busy the schedule keeps running and the backlog shows as latency.
func openLoop(ctx context.Context, s *sender, g *generator, rate float64, workers int, lim limits) *tally {
	ctx, cancel := context.WithTimeout(ctx, lim.duration)
	defer cancel()
	type job struct{ at, dispatched time.Time }
	jobs := make(chan job, 1<<16)
	tallies := make([]*tally, workers)
	var wg sync.WaitGroup
	for w := range workers {
		tallies[w] = newTally()
		wg.Add(1)
		go func(t *tally) {
			defer wg.Done()
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain
				}
				t.one(ctx, s, g.nextRequest(time.Now()), j.at, j.dispatched)
			}
		}(tallies[w])
	}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var n uint64
	tick := time.NewTicker(time.Millisecond)
loop:
	for {
		// Emit every request whose time has come (the ticker is coarse).
		now := time.Now()
		for {
			at := start.Add(time.Duration(n) * interval)
			if at.After(now) || (lim.requests > 0 && n >= lim.requests) {
				break
			}
			select {
			case jobs <- job{at: at, dispatched: now}:
			default: // backlog beyond 65536: stop the phase rather than lie
				break loop
			}
			n++
		}
		if lim.requests > 0 && n >= lim.requests {
			break
		}
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	all := newTally()
	for _, t := range tallies {
		all.add(t)
	}
	return all
}

func (t *tally) result(name, server, mode string, conc int, rate float64, elapsed time.Duration) phaseResult {
	r := phaseResult{
		Name: name, Server: server, Mode: mode, Concurrency: conc, TargetRate: rate,
		Seconds: elapsed.Seconds(), Sent: t.sent, OK: t.ok, Latency: t.h.summary(), ByKind: t.byKind,
		Throughput: float64(t.ok) / elapsed.Seconds(),
	}
	if t.hd.n > 0 {
		d := t.hd.summary()
		r.FromDispatch = &d
	}
	if len(t.errs) > 0 {
		r.Errors = t.errs
	}
	return r
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
