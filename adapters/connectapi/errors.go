package connectapi

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/betterkey/backend/domain"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
)

// codeFor is the one table from domain error kinds to Connect codes (the gRPC canonical codes).
// ok is false for a kind the table does not know; a test proves that never happens for any kind
// in domain.Kinds, so a new kind cannot silently become an internal error.
func codeFor(k domain.Kind) (code connect.Code, ok bool) {
	switch k {
	case domain.KindInternal:
		return connect.CodeInternal, true
	case domain.KindInvalid:
		return connect.CodeInvalidArgument, true
	case domain.KindUnauthenticated:
		return connect.CodeUnauthenticated, true
	case domain.KindPermissionDenied:
		return connect.CodePermissionDenied, true
	case domain.KindNotFound:
		return connect.CodeNotFound, true
	case domain.KindConflict:
		return connect.CodeAlreadyExists, true
	case domain.KindFailedPrecondition:
		return connect.CodeFailedPrecondition, true
	case domain.KindTooLarge, domain.KindRateLimited:
		return connect.CodeResourceExhausted, true
	case domain.KindUnavailable:
		return connect.CodeUnavailable, true
	}
	return connect.CodeInternal, false
}

// The stable codes of errors that have no *domain.Error of their own.
const (
	codeInternal = "INTERNAL"
	codeCanceled = "CANCELED"
	codeTimeout  = "TIMEOUT"
)

// classify picks what the client may see for err: the connect code and a *domain.Error whose Code
// and Msg are safe to send. A classified error keeps its message; everything else, including any
// *domain.Error of KindInternal, becomes a bare "internal error" so that no wrapped context, SQL
// or upstream text leaves the server.
func classify(err error) (connect.Code, *domain.Error) {
	if e := domain.AsError(err); e != nil && e.Kind != domain.KindInternal {
		if code, ok := codeFor(e.Kind); ok {
			return code, e
		}
	}
	switch {
	case errors.Is(err, context.Canceled) || connect.CodeOf(err) == connect.CodeCanceled:
		return connect.CodeCanceled, &domain.Error{Kind: domain.KindUnavailable, Code: codeCanceled, Msg: "request canceled"}
	case errors.Is(err, context.DeadlineExceeded) || connect.CodeOf(err) == connect.CodeDeadlineExceeded:
		return connect.CodeDeadlineExceeded, &domain.Error{Kind: domain.KindUnavailable, Code: codeTimeout, Msg: "request timed out"}
	}
	return connect.CodeInternal, &domain.Error{Kind: domain.KindInternal, Code: codeInternal, Msg: "internal error"}
}

// toConnect builds the error the client receives. The message is the client-safe Msg; the stable
// Code travels as an adminv1.ErrorDetail so that tools switch on it instead of parsing text.
func toConnect(err error) *connect.Error {
	code, safe := classify(err)
	ce := connect.NewError(code, errors.New(safe.Msg))
	if d, derr := connect.NewErrorDetail(&adminv1.ErrorDetail{Code: safe.Code}); derr == nil {
		ce.AddDetail(d)
	}
	return ce
}

// ErrorCode returns the stable code attached to an error from the admin API, or "" when the
// error carries none (a transport failure before the server answered). Clients such as
// betterkeyctl use it to report the code without parsing messages.
func ErrorCode(err error) string {
	ce, ok := errors.AsType[*connect.Error](err)
	if !ok {
		return ""
	}
	for _, d := range ce.Details() {
		if v, verr := d.Value(); verr == nil {
			if info, ok := v.(*adminv1.ErrorDetail); ok {
				return info.GetCode()
			}
		}
	}
	return ""
}
