package httpapi

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the REST transport's Prometheus collectors, registered on an injected registry
// rather than the global default so tests and replicas of the app in one process stay separate.
type metrics struct {
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "betterkey", Subsystem: "http", Name: "request_duration_seconds",
		Help:    "Latency of REST requests by route and status.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25},
	}, []string{"method", "route", "status"})}
	if err := reg.Register(m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) observe(method, route string, status int, d time.Duration) {
	m.duration.WithLabelValues(method, route, strconv.Itoa(status)).Observe(d.Seconds())
}
