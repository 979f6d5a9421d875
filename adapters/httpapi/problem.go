package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/betterkey/backend/domain"
)

// statusByKind is the one table that turns a domain error kind into an HTTP status.
var statusByKind = map[domain.Kind]int{
	domain.KindInternal:           http.StatusInternalServerError,
	domain.KindInvalid:            http.StatusBadRequest,
	domain.KindUnauthenticated:    http.StatusUnauthorized,
	domain.KindPermissionDenied:   http.StatusForbidden,
	domain.KindNotFound:           http.StatusNotFound,
	domain.KindConflict:           http.StatusConflict,
	domain.KindFailedPrecondition: http.StatusConflict,
	domain.KindTooLarge:           http.StatusRequestEntityTooLarge,
	domain.KindRateLimited:        http.StatusTooManyRequests,
	domain.KindUnavailable:        http.StatusServiceUnavailable,
}

// Problem is the RFC 9457 body of every error response.
type Problem struct {
	Type              string `json:"type"`
	Title             string `json:"title"`
	Status            int    `json:"status"`
	Detail            string `json:"detail"`
	Code              string `json:"code"`
	RequestID         string `json:"request_id"`
	RetryAfterSeconds int    `json:"retry_after_seconds,omitempty"`
	CommandID         string `json:"command_id,omitempty"`
}

// errorCodeKey carries the problem code to the access log, so a log line says which check failed.
const errorCodeKey = "error_code"

// internalProblem is what every unclassified error becomes: nothing of its text leaves the server.
var internalProblem = domain.Error{Kind: domain.KindInternal, Code: "INTERNAL", Msg: "internal error"}

// problemFor builds the client-safe problem for err.
func problemFor(err error, requestID string) Problem {
	if se, ok := errors.AsType[*statusError](err); ok {
		return Problem{Type: "https://betterkey.app/problems/" + se.code, Title: http.StatusText(se.status),
			Status: se.status, Detail: se.msg, Code: se.code, RequestID: requestID}
	}
	e := domain.AsError(err)
	switch {
	case e == nil && errors.Is(err, context.DeadlineExceeded):
		e = &domain.Error{Kind: domain.KindUnavailable, Code: "TIMEOUT", Msg: "the request timed out"}
	case e == nil || e.Kind == domain.KindInternal:
		e = &internalProblem
	}
	status := statusByKind[e.Kind]
	p := Problem{
		Type:   "https://betterkey.app/problems/" + e.Code,
		Title:  http.StatusText(status),
		Status: status, Detail: e.Msg, Code: e.Code, RequestID: requestID,
	}
	if status == http.StatusServiceUnavailable {
		p.RetryAfterSeconds = unavailableRetryAfter
	}
	return p
}

// unavailableRetryAfter is the Retry-After of every 503: long enough for a load balancer to route
// around a draining replica or a database to come back from a restart, short enough that a
// user's tap is retried while they still look at the screen.
const unavailableRetryAfter = 2

// fail writes err as problem+json and aborts the chain. Server-side failures are logged once here
// with the wrapped context; client errors are not logged as errors.
func (a *api) fail(c *gin.Context, err error) {
	p := problemFor(err, requestID(c))
	if p.Status >= 500 {
		a.log.ErrorContext(c.Request.Context(), "request failed", slog.String("request_id", p.RequestID),
			slog.String("route", c.FullPath()), slog.String("error", err.Error()))
	}
	writeProblem(c, p)
}

func writeProblem(c *gin.Context, p Problem) {
	c.Set(errorCodeKey, p.Code)
	if p.Status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="betterkey"`)
	}
	if p.RetryAfterSeconds > 0 {
		c.Header("Retry-After", strconv.Itoa(p.RetryAfterSeconds))
	}
	body, _ := json.Marshal(p)
	c.Abort()
	c.Data(p.Status, "application/problem+json", body)
}
