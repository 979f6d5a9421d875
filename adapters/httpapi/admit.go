package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/betterkey/backend/adapters/admission"
	"github.com/betterkey/backend/domain"
)

// errOverloaded is the refusal of a request the replica has no room for; it is a 503 with
// Retry-After, so the app retries and Smartcar redelivers a webhook, and nothing was done.
var errOverloaded = &domain.Error{Kind: domain.KindUnavailable, Code: "OVERLOADED",
	Msg: "the server is at capacity; retry after Retry-After seconds"}

// commandsRoute is lock and unlock: the route that keeps a share of its own under load.
const commandsRoute = "/v1/vehicles/:id/commands"

// routeClass says how a request is admitted, and whether it is limited at all: probes, the
// OpenAPI document and unknown routes cost next to nothing and must answer under any load. A
// command-status read is a long-poll only when it asks to wait; a plain read takes the shared
// pool, so status reads cannot bypass it through the long-poll pool.
func routeClass(method, route string, waits bool) (admission.Class, bool) {
	switch {
	case route == "" || route == "/healthz" || route == "/readyz" || route == "/v1/openapi.json":
		return 0, false
	case route == commandsRoute && method == http.MethodPost:
		return admission.CarKey, true
	case route == longPollRoute && waits:
		return admission.LongPoll, true
	}
	return admission.Standard, true
}

// admit runs the request only when the limiter has room for its class; otherwise it answers 503
// OVERLOADED at once, before the body is read or the session looked up (it runs after
// secureTransport, so the refusal carries no-store and HSTS and plain HTTP is refused first). The refusal is counted
// by the access log (errors_total{code="OVERLOADED"}), not logged as a failure.
func (a *api) admit(c *gin.Context) {
	w := c.Query("wait")
	class, limited := routeClass(c.Request.Method, c.FullPath(), w != "" && w != "0")
	if !limited {
		c.Next()
		return
	}
	release, ok := a.limiter.Admit(c.Request.Context(), class)
	if !ok {
		writeProblem(c, problemFor(errOverloaded, requestID(c)))
		return
	}
	defer release()
	c.Next()
}

// registerAdmissionGauges exposes how full each pool is, so an operator sees a replica nearing
// its limits before it sheds (betterkey_http_admission_in_use{pool}).
func registerAdmissionGauges(reg prometheus.Registerer, l *admission.Limiter) error {
	pools := map[string]func() int{
		"shared":    func() int { s, _, _, _ := l.InFlight(); return s },
		"reserved":  func() int { _, r, _, _ := l.InFlight(); return r },
		"long_poll": func() int { _, _, p, _ := l.InFlight(); return p },
		"queued":    func() int { _, _, _, q := l.InFlight(); return q },
	}
	for pool, n := range pools {
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "betterkey", Subsystem: "http", Name: "admission_in_use",
			Help:        "Slots of the REST admission limiter in use, by pool (queued: requests waiting for one).",
			ConstLabels: prometheus.Labels{"pool": pool}}, func() float64 { return float64(n()) })
		if err := reg.Register(g); err != nil {
			return err
		}
	}
	return nil
}
