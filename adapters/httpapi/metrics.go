package httpapi

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the REST transport's Prometheus collectors, registered on an injected registry
// rather than the global default so tests and replicas of the app in one process stay separate.
// The histogram's _count is the per-route request counter; errors are counted by stable code, so
// an alert can tell a wave of UNAVAILABLE from a wave of INVALID_NONCE.
type metrics struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "betterkey", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Latency of REST requests by route and status; its count is the requests served.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25},
		}, []string{"method", "route", "status"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "betterkey", Subsystem: "http", Name: "errors_total",
			Help: "REST error responses by route, status and stable problem code.",
		}, []string{"route", "status", "code"}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(method, route string, status int, code string, d time.Duration) {
	s := strconv.Itoa(status)
	m.duration.WithLabelValues(method, route, s).Observe(d.Seconds())
	if code != "" {
		m.errors.WithLabelValues(route, s, code).Inc()
	}
}
