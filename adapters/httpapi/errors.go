package httpapi

import "github.com/betterkey/backend/domain"

// Transport-level errors: the route or method does not exist, or a dependency is not ready.
var (
	errRouteNotFound    = &domain.Error{Kind: domain.KindNotFound, Code: "NOT_FOUND", Msg: "no such route"}
	errMethodNotAllowed = &domain.Error{Kind: domain.KindInvalid, Code: "METHOD_NOT_ALLOWED", Msg: "method not allowed on this route"}
	errNotReady         = &domain.Error{Kind: domain.KindUnavailable, Code: "UNAVAILABLE", Msg: "not ready"}
)

// ErrDraining is the readiness failure of a replica that is stopping; a Ready func returns it
// (wrapped) so /readyz answers 503 DRAINING without logging it as a fault.
var ErrDraining = &domain.Error{Kind: domain.KindUnavailable, Code: "DRAINING", Msg: "this replica is stopping"}
