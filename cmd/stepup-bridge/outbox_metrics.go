package main

import (
	"context"
	"time"

	"github.com/stepup-bridge/stepup-bridge/bridge"
	"github.com/stepup-bridge/stepup-bridge/bridge/memstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/redisstore"
	"github.com/stepup-bridge/stepup-bridge/bridge/telemetry"
)

// outboxStatsInterval is how often serve refreshes the outbox gauges: often
// enough for alerts on depth and age, rare enough that N replicas cost Redis
// nothing noticeable (one pipelined round trip each).
const outboxStatsInterval = 15 * time.Second

// outboxStatsTimeout bounds one refresh, so a hung Redis cannot pile them up.
const outboxStatsTimeout = 5 * time.Second

// outboxSnapshot reads the store's outbox counters; ok is false for a store
// that has none.
func outboxSnapshot(ctx context.Context, s bridge.Store) (snap telemetry.OutboxSnapshot, ok bool, err error) {
	switch s := s.(type) {
	case *redisstore.Store:
		st, err := s.OutboxStats(ctx)
		return telemetry.OutboxSnapshot{Ready: st.Ready, InFlight: st.InFlight, Delayed: st.Delayed, Dead: st.Dead, OldestAge: st.OldestAge}, true, err
	case *memstore.Store:
		st, err := s.OutboxStats(ctx)
		return telemetry.OutboxSnapshot{Ready: st.Ready, InFlight: st.InFlight, Delayed: st.Delayed, Dead: st.Dead, OldestAge: st.OldestAge}, true, err
	}
	return telemetry.OutboxSnapshot{}, false, nil
}

// watchOutbox sets the outbox gauges now and every interval until ctx ends.
// One goroutine per process; with Redis every replica reports the same
// shared outbox, so dashboards take max() over replicas, not sum().
func (a *App) watchOutbox(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		rctx, cancel := context.WithTimeout(ctx, outboxStatsTimeout)
		snap, ok, err := outboxSnapshot(rctx, a.Store)
		cancel()
		switch {
		case !ok:
			return
		case err != nil && ctx.Err() == nil:
			a.Metrics.OutboxStatsFailed()
			// Once per outage, not every 15 s: the store's own errors say the rest.
			if !failing {
				a.Log.Warn("outbox stats unavailable; gauges keep their last value", "error", err)
			}
			failing = true
		case err == nil:
			a.Metrics.SetOutbox(snap)
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reportUndelivered says, at shutdown, what the memory store loses with
// the process: entries not yet delivered and dead letters. (Redis keeps
// them for the next process or another replica.)
func (a *App) reportUndelivered() {
	ms, ok := a.Store.(*memstore.Store)
	if !ok {
		return
	}
	st, err := ms.OutboxStats(context.Background())
	if err != nil || st.Ready+st.Delayed+st.Dead == 0 {
		return
	}
	a.Log.Error("memory store: outbox entries are lost with this process",
		"undelivered", st.Ready+st.Delayed, "dead_letters", st.Dead)
}
