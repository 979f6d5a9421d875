package ports

import (
	"context"

	"github.com/betterkey/backend/domain"
)

// ConnectOptions tune one Smartcar Connect session; the zero value lets the owner pick any brand
// and any number of vehicles.
type ConnectOptions struct {
	// Make skips Connect's brand selector (e.g. "TESLA").
	Make string
	// SingleSelect lets the owner pick one vehicle only; the tokens are then per vehicle.
	SingleSelect bool
	// ForceApproval shows the consent screen even when the owner approved this app before.
	ForceApproval bool
}

// VehicleAPI is the vehicle service (Smartcar) in domain terms: Connect, token grants, the
// vehicle list, lock status, lock commands and disconnect. Vehicle ids are Smartcar's opaque
// strings; the Smartcar user id is the stable key of a grant. Two generations implement it: v2
// authenticates every vehicle call with the grant's user access token; v3 authenticates as the
// application and names the user (UserTokens reports which). Connect, the token grants, User,
// Vehicles and Permissions use the grant's user token in both, at link time.
//
// Implementations are safe for concurrent use, bound every call by a timeout of their own (on top
// of ctx), and never put a token, a code or an upstream body into an error or a log line.
//
// Error contract, shared by every method that calls out: a failure of the upstream call is a
// *domain.UpstreamError (wrapped at most with context) whose Err is one of:
//   - domain.ErrReauthRequired: the access token is expired or rejected, the refresh token is dead
//     or already rotated away, or the car maker login changed. After a rejected access token,
//     refresh once and retry; after a rejected refresh token, only a new Connect helps;
//   - domain.ErrConsentRevoked: access to this vehicle or scope was revoked or never granted;
//   - domain.ErrOwnerActionRequired: the car maker account needs the owner;
//   - domain.ErrVehicleAsleep, domain.ErrVehicleUnreachable (Temporary), domain.ErrVehicleInMotion,
//     domain.ErrVehicleNotReady: the vehicle refused; nothing was executed;
//   - domain.ErrRateLimited (Temporary, RetryAfter as the upstream sent it);
//   - domain.ErrNotCapable: the vehicle cannot do this;
//   - domain.ErrUpstreamUnavailable (server errors, connection failures) and
//     domain.ErrUpstreamTimeout (no answer in time, or ctx ended), both Temporary;
//   - domain.ErrUpstreamRejected: the upstream refused our request as such (a bug or bad client
//     credentials), not Temporary;
//   - domain.ErrConnectCodeInvalid from ExchangeCode only.
//
// MayHaveExecuted is set only for calls with effects (ExchangeCode, Refresh, Security,
// Disconnect) when the request was sent and no definite answer came: a timeout or reset after
// sending, or a server error that does not prove the request was dropped. A failure before
// anything was sent (refused connection, DNS) and every definite refusal leave it false.
type VehicleAPI interface {
	// AuthorizeURL returns the Connect URL the owner opens: response_type=code, the configured
	// client id, redirect URI, scopes and mode, and state. The URL contains state, so it is as
	// secret as state until the owner has used it.
	AuthorizeURL(state domain.Secret, opts ConnectOptions) string
	// ExchangeCode redeems a Connect authorization code (single use, 10 minutes, bound to the
	// redirect URI) for the grant's first token set. A code that is unknown, expired, used or
	// bound elsewhere fails with domain.ErrConnectCodeInvalid.
	ExchangeCode(ctx context.Context, code domain.Secret) (domain.TokenSet, error)
	// Refresh redeems a refresh token for a new token set. The upstream rotates the refresh token
	// on every use and kills the old one shortly after (domain.VehicleRefreshGrace), so the
	// caller must store the new set before using it. Retrying with the same refresh token inside
	// the grace succeeds; after it, or with an unknown or expired token, it fails with
	// domain.ErrReauthRequired. Access tokens of earlier sets keep working until they expire.
	Refresh(ctx context.Context, refreshToken domain.Secret) (domain.TokenSet, error)
	// User returns the Smartcar user id of the grant behind access: the key to store it under.
	User(ctx context.Context, access domain.Secret) (string, error)
	// Vehicles returns the ids of every vehicle the grant covers, in the upstream's order, across
	// all pages.
	Vehicles(ctx context.Context, access domain.Secret) ([]string, error)
	// UserTokens reports whether the vehicle calls below (Attributes, LockStatus, Security,
	// Disconnect) authenticate with grant.Access, which then has to be fresh (v2). When false
	// (v3) they act as the application for grant.SmartcarUserID and ignore Access, so a
	// connection needs no token refresh after it is linked.
	UserTokens() bool
	// Attributes returns a vehicle's make, model and year (needs read_vehicle_info).
	Attributes(ctx context.Context, grant domain.VehicleGrant, vehicleID string) (domain.VehicleAttributes, error)
	// Permissions returns what the owner actually granted for the vehicle, sorted, across all
	// pages: Connect lets the owner decline optional scopes, so what was requested is not what
	// may be used.
	Permissions(ctx context.Context, access domain.Secret, vehicleID string) ([]domain.VehiclePermission, error)
	// LockStatus reads the vehicle's lock state and openings (needs read_security).
	LockStatus(ctx context.Context, grant domain.VehicleGrant, vehicleID string) (domain.LockStatus, error)
	// Security sends LOCK or UNLOCK (needs control_security) and returns the upstream request id
	// for the command history. Success means the upstream sent the command to the vehicle, not
	// that the vehicle confirmed it; it may take up to five minutes. An action other than
	// domain.SecurityLock or domain.SecurityUnlock is refused with a KindInvalid error before
	// anything is sent. An upstream that accepts a command as long-running (v3's 202) confirms
	// it from the vehicle's reported lock state before answering success; unconfirmed it is an
	// error with MayHaveExecuted set, never a success.
	Security(ctx context.Context, grant domain.VehicleGrant, vehicleID string, action domain.SecurityAction) (requestID string, err error)
	// Disconnect revokes this application's access to the vehicle at the upstream; the grant's
	// tokens no longer reach it afterwards (domain.ErrConsentRevoked).
	Disconnect(ctx context.Context, grant domain.VehicleGrant, vehicleID string) error
}
