package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// Metrics are the stepup_* Prometheus metrics. Labels are brand, platform
// and outcome names — never conversation, consumer or user ids.
type Metrics struct {
	Registry *prometheus.Registry

	HTTPRequests *prometheus.CounterVec
	HTTPDuration *prometheus.HistogramVec
	events       *prometheus.CounterVec
	links        *prometheus.CounterVec
	logins       *prometheus.CounterVec
	codes        *prometheus.CounterVec
	steppedUp    *prometheus.CounterVec
	deliveries   *prometheus.CounterVec
	attempts     *prometheus.HistogramVec

	// Outbox gauges, set from the store's own counters (SetOutbox). They
	// have no labels: the store counts the outbox as a whole.
	outboxDepth      prometheus.Gauge
	outboxInFlight   prometheus.Gauge
	outboxDelayed    prometheus.Gauge
	outboxDead       prometheus.Gauge
	outboxOldest     prometheus.Gauge
	outboxStatsError prometheus.Counter
}

var _ bridge.Recorder = (*Metrics)(nil)

// NewMetrics registers the metrics on a fresh registry (plus Go and process collectors).
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_http_requests_total", Help: "HTTP requests by route template and status code.",
		}, []string{"route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stepup_http_request_duration_seconds", Help: "HTTP request latency by route template.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_webhook_events_total", Help: "Platform events by kind and outcome.",
		}, []string{"brand", "platform", "kind", "outcome"}),
		links: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_login_links_issued_total", Help: "Login links issued, by how they were requested.",
		}, []string{"brand", "via"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_logins_total", Help: "OIDC logins by outcome.",
		}, []string{"brand", "outcome"}),
		codes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_confirm_codes_total", Help: "Confirm-code messages by result.",
		}, []string{"brand", "result"}),
		steppedUp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_stepped_up_total", Help: "Conversations stepped up.",
		}, []string{"brand", "platform"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_outbox_deliveries_total", Help: "Outbox delivery attempts by effect and outcome.",
		}, []string{"brand", "platform", "effect", "outcome"}),
		attempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stepup_outbox_delivery_attempts", Help: "Attempts an outbox entry took, observed when it is settled (delivered or dead_letter).",
			// 1 is the healthy case; the tail shows outages (max_attempts is ~110 by default).
			Buckets: []float64{1, 2, 3, 5, 8, 13, 21, 34, 55, 89},
		}, []string{"brand", "platform", "effect", "outcome"}),
		outboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stepup_outbox_depth", Help: "Outbox entries waiting to be delivered: due, in flight or waiting for a retry (dead letters excluded).",
		}),
		outboxInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stepup_outbox_in_flight", Help: "Outbox entries handed to a worker and not yet settled.",
		}),
		outboxDelayed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stepup_outbox_delayed", Help: "Outbox entries waiting for a retry after a failed attempt.",
		}),
		outboxDead: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stepup_outbox_dead_letters", Help: "Dead letters kept for an operator (stepup-bridge outbox list).",
		}),
		outboxOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stepup_outbox_oldest_age_seconds", Help: "Age of the oldest outbox entry waiting to be delivered; 0 when none.",
		}),
		outboxStatsError: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stepup_outbox_stats_errors_total", Help: "Failed reads of the outbox counters (the gauges keep their last value).",
		}),
	}
	r.MustRegister(m.HTTPRequests, m.HTTPDuration, m.events, m.links, m.logins, m.codes, m.steppedUp, m.deliveries, m.attempts,
		m.outboxDepth, m.outboxInFlight, m.outboxDelayed, m.outboxDead, m.outboxOldest, m.outboxStatsError)
	return m
}

// Event implements bridge.Recorder.
func (m *Metrics) Event(brand, platform string, kind bridge.EventKind, outcome string) {
	if kind == "" {
		kind = "none"
	}
	m.events.WithLabelValues(brand, platform, string(kind), outcome).Inc()
}

// LinkIssued implements bridge.Recorder.
func (m *Metrics) LinkIssued(brand, via string) { m.links.WithLabelValues(brand, via).Inc() }

// Login implements bridge.Recorder.
func (m *Metrics) Login(brand, outcome string) { m.logins.WithLabelValues(brand, outcome).Inc() }

// Code implements bridge.Recorder.
func (m *Metrics) Code(brand string, r bridge.CodeResult) {
	m.codes.WithLabelValues(brand, string(r)).Inc()
}

// SteppedUp implements bridge.Recorder.
func (m *Metrics) SteppedUp(brand, platform string) {
	m.steppedUp.WithLabelValues(brand, platform).Inc()
}

// Delivery implements bridge.Recorder.
func (m *Metrics) Delivery(brand, platform string, e bridge.Effect, outcome string) {
	m.deliveries.WithLabelValues(brand, platform, string(e), outcome).Inc()
}

// DeliveryAttempts implements bridge.AttemptRecorder.
func (m *Metrics) DeliveryAttempts(brand, platform string, e bridge.Effect, outcome string, attempts int) {
	m.attempts.WithLabelValues(brand, platform, string(e), outcome).Observe(float64(attempts))
}

// OutboxSnapshot is the outbox at a glance, as a store reports it.
type OutboxSnapshot struct {
	Ready     int64 // in the streams: due or in flight
	InFlight  int64 // of Ready, handed to a worker
	Delayed   int64 // waiting for a retry
	Dead      int64
	OldestAge time.Duration
}

// SetOutbox sets the outbox gauges.
func (m *Metrics) SetOutbox(s OutboxSnapshot) {
	m.outboxDepth.Set(float64(s.Ready + s.Delayed))
	m.outboxInFlight.Set(float64(s.InFlight))
	m.outboxDelayed.Set(float64(s.Delayed))
	m.outboxDead.Set(float64(s.Dead))
	m.outboxOldest.Set(s.OldestAge.Seconds())
}

// OutboxStatsFailed counts a failed read of the outbox counters.
func (m *Metrics) OutboxStatsFailed() { m.outboxStatsError.Inc() }
