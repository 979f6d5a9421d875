// Package domain is the BetterKey model: entities, value types, invariants and the closed set of
// error kinds every transport maps from. It imports the standard library only.
package domain

import "errors"

// Kind classifies an error for transports. The zero value is KindInternal so that an error nobody
// classified is never reported as the caller's fault and never leaks its text.
type Kind uint8

// The kinds form the closed canonical error space; each transport maps every kind in one table.
const (
	KindInternal Kind = iota
	KindInvalid
	KindUnauthenticated
	KindPermissionDenied
	KindNotFound
	KindConflict
	KindFailedPrecondition
	KindTooLarge
	KindRateLimited
	KindUnavailable
)

// String names the kind for logs and tests.
func (k Kind) String() string {
	switch k {
	case KindInvalid:
		return "invalid"
	case KindUnauthenticated:
		return "unauthenticated"
	case KindPermissionDenied:
		return "permission_denied"
	case KindNotFound:
		return "not_found"
	case KindConflict:
		return "conflict"
	case KindFailedPrecondition:
		return "failed_precondition"
	case KindTooLarge:
		return "too_large"
	case KindRateLimited:
		return "rate_limited"
	case KindUnavailable:
		return "unavailable"
	default:
		return "internal"
	}
}

// Kinds lists every kind so transports can prove their mapping tables are complete.
func Kinds() []Kind {
	return []Kind{KindInternal, KindInvalid, KindUnauthenticated, KindPermissionDenied, KindNotFound,
		KindConflict, KindFailedPrecondition, KindTooLarge, KindRateLimited, KindUnavailable}
}

// Error is a classified error whose Code and Msg are safe to show to API clients. Adapters wrap
// these with %w to add context that stays in logs.
type Error struct {
	Kind Kind
	Code string // stable UPPER_SNAKE code the app switches on
	Msg  string // short human text, never containing secrets or upstream bodies
}

// Error returns the client-safe message.
func (e *Error) Error() string { return e.Msg }

// KindOf reports the kind of the first *Error in err's chain, or KindInternal.
func KindOf(err error) Kind {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	return KindInternal
}

// AsError returns the first *Error in err's chain, or nil when the error is unclassified.
func AsError(err error) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return nil
}

// Invalid returns a validation error naming the offending field; the message is built from
// constants chosen by the caller, never from user input.
func Invalid(field, reason string) *Error {
	return &Error{Kind: KindInvalid, Code: "VALIDATION_FAILED", Msg: field + ": " + reason}
}

// Sentinels are compared with errors.Is and may be wrapped with %w.
var (
	ErrNotFound       = &Error{Kind: KindNotFound, Code: "NOT_FOUND", Msg: "not found"}
	ErrConflict       = &Error{Kind: KindConflict, Code: "CONFLICT", Msg: "already exists"}
	ErrUnavailable    = &Error{Kind: KindUnavailable, Code: "UNAVAILABLE", Msg: "a dependency is unavailable, try again later"}
	ErrTooLarge       = &Error{Kind: KindTooLarge, Code: "PAYLOAD_TOO_LARGE", Msg: "request body is too large"}
	ErrUnauthorized   = &Error{Kind: KindUnauthenticated, Code: "UNAUTHENTICATED", Msg: "authentication is required"}
	ErrForbidden      = &Error{Kind: KindPermissionDenied, Code: "FORBIDDEN", Msg: "not allowed"}
	ErrRateLimited    = &Error{Kind: KindRateLimited, Code: "RATE_LIMITED", Msg: "too many requests"}
	ErrInvalidRequest = &Error{Kind: KindInvalid, Code: "VALIDATION_FAILED", Msg: "request is malformed"}

	ErrInvalidIdentityToken = &Error{Kind: KindUnauthenticated, Code: "INVALID_IDENTITY_TOKEN", Msg: "identity token is invalid"}
	ErrInvalidNonce         = &Error{Kind: KindUnauthenticated, Code: "INVALID_NONCE", Msg: "nonce is missing, wrong, expired or already used"}
	// ErrInvalidAuthorizationCode: Apple refused the authorization code (expired, used, issued to
	// another client) or it belongs to another Apple account than the identity token.
	ErrInvalidAuthorizationCode = &Error{Kind: KindUnauthenticated, Code: "INVALID_AUTHORIZATION_CODE", Msg: "authorization code is invalid, expired or already used"}
	// ErrAccountDeletionPending: the account is being erased (an upstream is still to be told);
	// the same Apple ID can sign in to a new account once the erasure is done.
	ErrAccountDeletionPending = &Error{Kind: KindConflict, Code: "ACCOUNT_DELETION_PENDING", Msg: "this account is being deleted; sign in again once that is done"}
	ErrInvalidAccessToken     = &Error{Kind: KindUnauthenticated, Code: "INVALID_ACCESS_TOKEN", Msg: "access token is invalid"}
	ErrAccessTokenExpired     = &Error{Kind: KindUnauthenticated, Code: "ACCESS_TOKEN_EXPIRED", Msg: "access token has expired, refresh the session"}
	ErrInvalidRefreshToken    = &Error{Kind: KindUnauthenticated, Code: "INVALID_REFRESH_TOKEN", Msg: "refresh token is invalid, sign in again"}
	ErrRefreshTokenReused     = &Error{Kind: KindUnauthenticated, Code: "REFRESH_TOKEN_REUSED", Msg: "refresh token was already used; the session is revoked, sign in again"}
	ErrSessionExpired         = &Error{Kind: KindUnauthenticated, Code: "SESSION_EXPIRED", Msg: "session has expired, sign in again"}
	ErrSessionRevoked         = &Error{Kind: KindUnauthenticated, Code: "SESSION_REVOKED", Msg: "session was revoked, sign in again"}
	ErrInvalidAdminToken      = &Error{Kind: KindUnauthenticated, Code: "INVALID_ADMIN_TOKEN", Msg: "admin token is missing or invalid"}
)
