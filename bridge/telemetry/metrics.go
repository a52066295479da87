package telemetry

import (
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
	}
	r.MustRegister(m.HTTPRequests, m.HTTPDuration, m.events, m.links, m.logins, m.codes, m.steppedUp, m.deliveries)
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
