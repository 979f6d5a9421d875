package httpapi

import (
	"net/http"

	"github.com/betterkey/backend/domain"
)

// Transport-level errors: the route or method does not exist, or a dependency is not ready.
var (
	errRouteNotFound = &domain.Error{Kind: domain.KindNotFound, Code: "NOT_FOUND", Msg: "no such route"}
	errNotReady      = &domain.Error{Kind: domain.KindUnavailable, Code: "UNAVAILABLE", Msg: "not ready"}
)

// ErrDraining is the readiness failure of a replica that is stopping; a Ready func returns it
// (wrapped) so /readyz answers 503 DRAINING without logging it as a fault.
var ErrDraining = &domain.Error{Kind: domain.KindUnavailable, Code: "DRAINING", Msg: "this replica is stopping"}

// statusError is a refusal of HTTP itself, whose status no domain kind names: a method the route
// does not have (405), a body of another media type (415).
type statusError struct {
	status    int
	code, msg string
}

func (e *statusError) Error() string { return e.msg }

var errMethodNotAllowed = &statusError{status: http.StatusMethodNotAllowed, code: "METHOD_NOT_ALLOWED",
	msg: "this route does not take that method; Allow lists the ones it takes"}
