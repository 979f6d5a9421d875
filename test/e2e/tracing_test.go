package e2e

import (
	"net/http"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
)

// With tracing on, a request is one trace: the server span named by route, the database
// statements and the call to Smartcar under it; a failed request's span carries its request id
// and stable code, and no span carries a token.
func TestTracesSpanTheRequest(t *testing.T) {
	e := startServer(t)
	s, cars := e.garage(1)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	r, _ := e.replica(fx.Decorate(func(trace.TracerProvider) trace.TracerProvider { return tp }))

	e.sc.SetFault(smartcarsim.EndpointLockStatus, smartcarsim.Fault{Status: http.StatusInternalServerError, Times: 1})
	status := r.do("GET", "/v1/vehicles/"+cars[0].id+"/status", nil, s.access)
	if status.status < 500 {
		t.Fatalf("status with Smartcar failing: %d %s", status.status, status.raw)
	}
	bad := r.do("GET", "/v1/me", nil, "not-a-token")
	r.expect(bad, http.StatusUnauthorized, "INVALID_ACCESS_TOKEN")

	byTrace := map[trace.TraceID][]sdktrace.ReadOnlySpan{}
	var statusSpan, badSpan sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		byTrace[sp.SpanContext().TraceID()] = append(byTrace[sp.SpanContext().TraceID()], sp)
		for _, a := range sp.Attributes() {
			if a.Key == "betterkey.request_id" {
				switch a.Value.AsString() {
				case status.header.Get("X-Request-Id"):
					statusSpan = sp
				case bad.header.Get("X-Request-Id"):
					badSpan = sp
				}
			}
		}
	}
	if statusSpan == nil || badSpan == nil {
		t.Fatalf("no server span carries the request ids (%d spans)", len(rec.Ended()))
	}
	if statusSpan.Name() != "GET /v1/vehicles/:id/status" || statusSpan.Status().Code.String() != "Error" {
		t.Errorf("status span %q, %v", statusSpan.Name(), statusSpan.Status())
	}
	kinds := map[string]int{}
	for _, sp := range byTrace[statusSpan.SpanContext().TraceID()] {
		switch {
		case sp.SpanKind() == trace.SpanKindClient && len(sp.Name()) > 3 && sp.Name()[:3] == "db.":
			kinds["database"]++
		case sp.SpanKind() == trace.SpanKindClient:
			kinds["upstream"]++
		}
	}
	if kinds["database"] == 0 || kinds["upstream"] == 0 {
		t.Errorf("the status request's trace lacks database or Smartcar spans: %v", kinds)
	}
	for _, a := range badSpan.Attributes() {
		if a.Key == "betterkey.error_code" && a.Value.AsString() != "INVALID_ACCESS_TOKEN" {
			t.Errorf("error code %q on the span", a.Value.AsString())
		}
	}
	for _, sp := range rec.Ended() {
		for _, a := range sp.Attributes() {
			if v := a.Value.String(); v == s.access || v == s.refresh {
				t.Fatalf("span %s carries a token in %s", sp.Name(), a.Key)
			}
		}
	}
}
