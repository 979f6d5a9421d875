// Package tracing builds the OpenTelemetry tracer provider: spans for every REST and Connect
// request, every database statement and every call to Apple and Smartcar, exported over
// OTLP/HTTP to the collector BETTERKEY_OTLP_ENDPOINT names. Without one, tracing is off and costs
// nothing. Spans carry routes, statuses, stable error codes and request ids, never a token, a
// body or a bound SQL value.
package tracing

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// New returns the provider and the function that flushes and stops it. endpoint is an OTLP/HTTP
// base URL such as http://otel-collector:4318; empty turns tracing off.
func New(ctx context.Context, endpoint, env string) (trace.TracerProvider, func(context.Context) error, error) {
	if endpoint == "" {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(resource.NewSchemaless(
		attribute.String("service.name", "betterkeyd"), attribute.String("deployment.environment.name", env))))
	// W3C trace context in and out, so a trace spans the load balancer, us and the upstreams.
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp, tp.Shutdown, nil
}
