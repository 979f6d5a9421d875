package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

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
// OpenAPI document and unknown routes cost next to nothing and must answer under any load.
func routeClass(method, route string) (admission.Class, bool) {
	switch {
	case route == "" || route == "/healthz" || route == "/readyz" || route == "/v1/openapi.json":
		return 0, false
	case route == commandsRoute && method == http.MethodPost:
		return admission.CarKey, true
	case route == longPollRoute:
		return admission.LongPoll, true
	}
	return admission.Standard, true
}

// admit runs the request only when the limiter has room for its class; otherwise it answers 503
// OVERLOADED at once, before the body is read or the session looked up. The refusal is counted
// by the access log (errors_total{code="OVERLOADED"}), not logged as a failure.
func (a *api) admit(c *gin.Context) {
	class, limited := routeClass(c.Request.Method, c.FullPath())
	if !limited || a.limiter == nil {
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
