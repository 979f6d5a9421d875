package wiring

import (
	"context"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/fx"

	"github.com/betterkey/backend/adapters/tracing"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
)

// newTracerProvider is the graph's trace.TracerProvider: OTLP when configured, a no-op
// otherwise; a test decorates it with a recorder. Spans still buffered are flushed at stop.
func newTracerProvider(lc fx.Lifecycle, cfg config.Config) (trace.TracerProvider, error) {
	tp, shutdown, err := tracing.New(context.Background(), cfg.OTLPEndpoint, string(cfg.Env))
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(shutdown))
	return tp, nil
}

// tracingOn reports whether tp records anything, so the hot paths skip instrumentation that
// would only feed a no-op.
func tracingOn(tp trace.TracerProvider) bool {
	_, off := tp.(noop.TracerProvider)
	return !off
}

// traced wraps a listener's handler in a server span per request; the REST transport names it
// by route and adds the request id and the problem code.
func traced(tp trace.TracerProvider, name string, h http.Handler) http.Handler {
	if !tracingOn(tp) {
		return h
	}
	// The mux's catch-all pattern would rename the span "GET /" once the handler returns;
	// forgetting it keeps the route name the REST transport gave it.
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		r.Pattern = ""
	})
	return otelhttp.NewHandler(inner, name, otelhttp.WithTracerProvider(tp))
}

// tracedClient is an HTTP client whose calls to Apple and Smartcar are client spans that carry
// the trace on (traceparent); nil, the adapters' own default, when tracing is off.
func tracedClient(tp trace.TracerProvider) *http.Client {
	if !tracingOn(tp) {
		return nil
	}
	return &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(tp))}
}
