package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/betterkey/backend/adapters/requestid"
	"github.com/betterkey/backend/domain"
)

const requestIDKey = "request_id"

// withRequestID adopts a well-formed incoming X-Request-Id (so a trace spans the proxy) or makes one.
func withRequestID(c *gin.Context) {
	id := requestid.Adopt(c.GetHeader(requestid.Header))
	c.Set(requestIDKey, id)
	c.Header(requestid.Header, id)
	c.Next()
}

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// recoverPanics turns a panic into a 500 problem; the panic value is logged, the body never.
func (a *api) recoverPanics(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			a.fail(c, fmt.Errorf("panic: %v", v))
		}
	}()
	c.Next()
}

// accessLog records one line per request: route, status, latency and request id. Headers, query
// strings and bodies are never logged; they carry tokens, codes and nonces.
func (a *api) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	elapsed := time.Since(start)
	status := c.Writer.Status()
	code := c.GetString(errorCodeKey)
	a.metrics.observe(c.Request.Method, route, status, code, elapsed)
	annotateSpan(c.Request.Context(), c.Request.Method, route, requestID(c), status, code)
	attrs := []slog.Attr{slog.String("request_id", requestID(c)), slog.String("method", c.Request.Method),
		slog.String("route", route), slog.Int("status", status), slog.Duration("duration", elapsed)}
	if code != "" {
		attrs = append(attrs, slog.String("code", code))
	}
	a.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "http request", attrs...)
}

// longPollRoute is the one route whose handler waits on purpose; its deadline includes the wait.
const longPollRoute = "/v1/commands/:id"

// withDeadline bounds the request's context, so a database or upstream that stops answering
// (packets dropped rather than refused) ends the request as 503 within the deadline instead of
// holding it until TCP gives up.
func (a *api) withDeadline(c *gin.Context) {
	d := a.opts.RequestTimeout
	if c.FullPath() == longPollRoute {
		d += maxWaitSeconds * time.Second
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), d)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

// annotateSpan names the request's server span (when tracing is on) by its route and adds what an
// operator looks a failure up by: the request id the client saw and the stable problem code.
func annotateSpan(ctx context.Context, method, route, id string, status int, code string) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetName(method + " " + route)
	span.SetAttributes(attribute.String("http.route", route), attribute.String("betterkey.request_id", id))
	if code != "" {
		span.SetAttributes(attribute.String("betterkey.error_code", code))
	}
	if status >= 500 {
		span.SetStatus(codes.Error, code)
	}
}

// limitBody caps every request body; an honest Content-Length over the cap is refused before a
// byte is read, and a lying one fails while decoding.
func (a *api) limitBody(c *gin.Context) {
	if c.Request.ContentLength > a.opts.MaxBodyBytes {
		a.fail(c, domain.ErrTooLarge)
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, a.opts.MaxBodyBytes)
	c.Next()
}

// secureTransport refuses plain HTTP outside development (SPEC §8) and sets HSTS and no-store on
// every response: responses carry tokens and must not be cached.
func (a *api) secureTransport(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Header("X-Content-Type-Options", "nosniff")
	if !a.opts.RequireHTTPS {
		c.Next()
		return
	}
	if !IsHTTPS(c.Request, a.opts.TrustForwardedProto) {
		writeProblem(c, Problem{Type: "https://betterkey.app/problems/HTTPS_REQUIRED", Title: "HTTPS Required",
			Status: http.StatusForbidden, Detail: "use https", Code: "HTTPS_REQUIRED", RequestID: requestID(c)})
		return
	}
	c.Header("Strict-Transport-Security", HSTS)
	c.Next()
}

// HSTS is the Strict-Transport-Security of every HTTPS answer: two years, subdomains included.
const HSTS = "max-age=63072000; includeSubDomains"

// IsHTTPS is the rule every listener applies outside development: the request came over TLS, or
// through a trusted proxy that says the client used https.
func IsHTTPS(r *http.Request, trustForwardedProto bool) bool {
	return r.TLS != nil || (trustForwardedProto && r.Header.Get("X-Forwarded-Proto") == "https")
}

// decodeError classifies a JSON decoding failure: too large, or malformed.
func decodeError(err error) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return domain.ErrTooLarge
	}
	return fmt.Errorf("decode body: %w", domain.ErrInvalidRequest)
}
