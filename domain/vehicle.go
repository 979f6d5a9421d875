package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Smartcar's token lifetimes (reference §1.3). The refresher and the vehicle-link use case plan
// around them; adapters compute expiries from them because Smartcar sends no refresh expiry.
const (
	// VehicleAccessTokenLifetime is how long a Smartcar access token is valid ("always 7200").
	VehicleAccessTokenLifetime = 2 * time.Hour
	// VehicleRefreshTokenLifetime is the 60-day cliff after which a connection needs a new
	// Connect unless it was refreshed before.
	VehicleRefreshTokenLifetime = 60 * 24 * time.Hour
	// VehicleRefreshGrace is how long a used refresh token keeps working. Smartcar's pages say
	// one minute in one place and ten in another; the shorter is the one to plan for.
	VehicleRefreshGrace = time.Minute
	// ConnectCodeLifetime is how long a Smartcar Connect authorization code can be exchanged.
	ConnectCodeLifetime = 10 * time.Minute
)

// VehicleAttributes is what Smartcar says a connected vehicle is. ID is Smartcar's vehicle id:
// opaque (not always a UUID), stable, and the key every vehicle call takes.
type VehicleAttributes struct {
	ID    string
	Make  string
	Model string
	Year  int
}

// VehicleGrant is what one vehicle API call acts under: the Smartcar user who granted access
// and, for an API that authenticates as that user (Smartcar v2), the grant's current access
// token. An API that authenticates as the application (v3) reads only the user id.
type VehicleGrant struct {
	SmartcarUserID string
	Access         Secret
}

// TokenSet is one Smartcar grant's credentials. Both tokens are Secrets, so printing, logging or
// JSON-encoding a TokenSet never shows them; Plaintext is the one way to serialise it for sealing.
type TokenSet struct {
	AccessToken      Secret
	RefreshToken     Secret
	AccessExpiresAt  time.Time
	RefreshExpiresAt time.Time
}

// AccessValidAt reports whether the access token is still usable at now with margin to spare, so
// callers refresh before a request would fail with an expired token.
func (t TokenSet) AccessValidAt(now time.Time, margin time.Duration) bool {
	return !t.AccessToken.Empty() && now.Add(margin).Before(t.AccessExpiresAt)
}

// RefreshValidAt reports whether the refresh token can still be redeemed at now; past it the
// connection needs a new Connect.
func (t TokenSet) RefreshValidAt(now time.Time) bool {
	return !t.RefreshToken.Empty() && now.Before(t.RefreshExpiresAt)
}

// LogValue shows lengths and expiries, which is all a log line may say about tokens.
func (t TokenSet) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("access_len", t.AccessToken.Len()),
		slog.Int("refresh_len", t.RefreshToken.Len()),
		slog.Time("access_expires_at", t.AccessExpiresAt),
		slog.Time("refresh_expires_at", t.RefreshExpiresAt),
	)
}

// tokenSetV1 is the frozen plaintext layout sealed at rest; a change needs a new version.
type tokenSetV1 struct {
	V                int       `json:"v"`
	AccessToken      string    `json:"access_token"`
	RefreshToken     string    `json:"refresh_token"`
	AccessExpiresAt  time.Time `json:"access_expires_at"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
}

// Plaintext serialises the set for a TokenCipher. The result is itself a Secret, so the revealed
// tokens only ever exist inside the cipher call.
func (t TokenSet) Plaintext() Secret {
	b, _ := json.Marshal(tokenSetV1{V: 1, AccessToken: t.AccessToken.Reveal(), RefreshToken: t.RefreshToken.Reveal(),
		AccessExpiresAt: t.AccessExpiresAt.UTC(), RefreshExpiresAt: t.RefreshExpiresAt.UTC()}) // cannot fail: strings and times
	return NewSecret(string(b))
}

// ParseTokenSet reads what Plaintext wrote. Errors never quote the input.
func ParseTokenSet(s Secret) (TokenSet, error) {
	var v tokenSetV1
	if err := json.Unmarshal([]byte(s.Reveal()), &v); err != nil || v.V != 1 || v.AccessToken == "" || v.RefreshToken == "" {
		return TokenSet{}, errors.New("parse token set: not a version 1 token set")
	}
	return TokenSet{AccessToken: NewSecret(v.AccessToken), RefreshToken: NewSecret(v.RefreshToken),
		AccessExpiresAt: v.AccessExpiresAt, RefreshExpiresAt: v.RefreshExpiresAt}, nil
}

// LockStatus is what the vehicle reported about its locks and openings (GET /security). Locked is
// nil when the vehicle did not say; the opening lists are empty where the vehicle has no such
// sensor, because Smartcar reports partial support with empty arrays.
type LockStatus struct {
	Locked        *bool
	Doors         []Opening
	Windows       []Opening
	Sunroofs      []Opening
	Storage       []Opening
	ChargingPorts []Opening
	// ObservedAt is when the vehicle recorded the data (Smartcar's SC-Data-Age), else when
	// Smartcar fetched it, else when the answer arrived: the app shows how fresh the state is.
	ObservedAt time.Time
	// FetchedAt is when Smartcar fetched the data from the car maker, else when the answer arrived.
	FetchedAt time.Time
}

// Opening is one door, window, sunroof, storage compartment or charging port. Type is Smartcar's
// position name (frontLeft, rear, chargingPort, ...); Status is kept verbatim in upper case.
type Opening struct {
	Type   string
	Status OpeningStatus
}

// OpeningStatus is an opening's state. Smartcar documents OPEN, CLOSED and UNKNOWN; some makes
// answer LOCKED or UNLOCKED for doors, which are kept as they come.
type OpeningStatus string

// The documented opening states.
const (
	OpeningOpen    OpeningStatus = "OPEN"
	OpeningClosed  OpeningStatus = "CLOSED"
	OpeningUnknown OpeningStatus = "UNKNOWN"
)

// SecurityAction is a lock command as Smartcar spells it in POST /security.
type SecurityAction string

// The two commands a digital key sends.
const (
	SecurityLock   SecurityAction = "LOCK"
	SecurityUnlock SecurityAction = "UNLOCK"
)

// Valid reports whether a is one of the two commands, so nothing else reaches the upstream.
func (a SecurityAction) Valid() bool { return a == SecurityLock || a == SecurityUnlock }

// ParseSecurityAction accepts the app's "lock"/"unlock" in any case.
func ParseSecurityAction(s string) (SecurityAction, error) {
	a := SecurityAction(strings.ToUpper(s))
	if !a.Valid() {
		return "", Invalid("action", "must be lock or unlock")
	}
	return a, nil
}

// VehiclePermission is a Smartcar permission (a Connect scope without the required: prefix).
type VehiclePermission string

// The permissions a car key needs (SPEC §4): send lock commands, read lock state, read make,
// model and year. Others are added only when a feature needs them.
const (
	PermissionControlSecurity VehiclePermission = "control_security"
	PermissionReadSecurity    VehiclePermission = "read_security"
	PermissionReadVehicleInfo VehiclePermission = "read_vehicle_info"
)

// requiredPrefix marks a scope the user cannot deselect in Connect.
const requiredPrefix = "required:"

// Scope returns the Connect scope entry for p; a required one makes vehicles that cannot grant it
// ineligible instead of silently connecting a key that cannot lock.
func (p VehiclePermission) Scope(required bool) string {
	if required {
		return requiredPrefix + string(p)
	}
	return string(p)
}

// ParseScope splits a Connect scope entry into its permission and whether it was required.
func ParseScope(s string) (VehiclePermission, bool) {
	if p, ok := strings.CutPrefix(s, requiredPrefix); ok {
		return VehiclePermission(p), true
	}
	return VehiclePermission(s), false
}

// DefaultConnectScopes is the minimal scope list of SPEC §4, in the order Connect shows them.
func DefaultConnectScopes() []string {
	return []string{PermissionControlSecurity.Scope(true), PermissionReadSecurity.Scope(false), PermissionReadVehicleInfo.Scope(false)}
}

// Vehicle upstream errors, compared with errors.Is. Adapters return them inside an
// *UpstreamError that adds the retry facts. Their codes are the stable ones of SPEC §5 and §11.
var (
	ErrVehicleAsleep      = &Error{Kind: KindUnavailable, Code: "VEHICLE_ASLEEP", Msg: "the vehicle is asleep, try again later"}
	ErrVehicleUnreachable = &Error{Kind: KindUnavailable, Code: "VEHICLE_UNREACHABLE", Msg: "the vehicle cannot be reached, try again later"}
	ErrVehicleInMotion    = &Error{Kind: KindFailedPrecondition, Code: "VEHICLE_IN_MOTION", Msg: "the vehicle is moving"}
	// ErrVehicleNotReady is any other vehicle state that refuses the request (a door open,
	// remote access turned off, low battery); the upstream code in the log says which.
	ErrVehicleNotReady = &Error{Kind: KindFailedPrecondition, Code: "VEHICLE_NOT_READY", Msg: "the vehicle is not in a state to do this"}
	// ErrReauthRequired means the connection's credentials no longer work (expired or rejected
	// access token, dead refresh token, car maker login changed): refresh once, then the owner
	// has to connect the vehicle again.
	ErrReauthRequired = &Error{Kind: KindFailedPrecondition, Code: "REAUTH_REQUIRED", Msg: "the vehicle connection needs to be renewed, connect the vehicle again"}
	// ErrConsentRevoked means Smartcar refused access to this vehicle or scope: the owner revoked
	// it or never granted it. Only a new Connect helps.
	ErrConsentRevoked = &Error{Kind: KindFailedPrecondition, Code: "CONSENT_REVOKED", Msg: "access to the vehicle was revoked, connect the vehicle again"}
	// ErrOwnerActionRequired means the car maker account needs the owner's attention (accept
	// terms, renew a subscription, pair a virtual key) before anything works.
	ErrOwnerActionRequired = &Error{Kind: KindFailedPrecondition, Code: "OWNER_ACTION_REQUIRED", Msg: "the car maker account needs your attention"}
	ErrNotCapable          = &Error{Kind: KindFailedPrecondition, Code: "NOT_CAPABLE", Msg: "the vehicle does not support this"}
	// ErrScopeNotGranted: the owner declined, in Connect, the optional permission this needs;
	// everything else of the connection keeps working.
	ErrScopeNotGranted     = &Error{Kind: KindPermissionDenied, Code: "SCOPE_NOT_GRANTED", Msg: "the owner did not grant the permission this needs; connect the vehicle again to grant it"}
	ErrUpstreamUnavailable = &Error{Kind: KindUnavailable, Code: "UPSTREAM_UNAVAILABLE", Msg: "the vehicle service is unavailable, try again later"}
	// ErrUpstreamTimeout means no answer came in time; for a command the outcome is unknown.
	ErrUpstreamTimeout = &Error{Kind: KindUnavailable, Code: "UPSTREAM_TIMEOUT", Msg: "the vehicle service did not answer in time"}
	// ErrUpstreamRejected means Smartcar refused the request itself (bad client credentials,
	// malformed request, unknown path): a bug or a misconfiguration on our side, never shown.
	ErrUpstreamRejected = &Error{Kind: KindInternal, Code: "UPSTREAM_REJECTED", Msg: "the vehicle service rejected the request"}
	// ErrConnectCodeInvalid means a Connect authorization code was unknown, expired, already
	// used or issued for another redirect URI; the owner has to start Connect again.
	ErrConnectCodeInvalid = &Error{Kind: KindInvalid, Code: "CONNECT_CODE_INVALID", Msg: "the vehicle authorization expired or was already used, connect again"}
)

// RequiresReconnect reports whether err means the connection is unusable until the owner goes
// through Connect again (SPEC §4: such connections are marked needs_reauth or revoked).
func RequiresReconnect(err error) bool {
	return errors.Is(err, ErrReauthRequired) || errors.Is(err, ErrConsentRevoked)
}

// UpstreamError is a classified failure of a call to the vehicle service. Besides the domain
// error it maps to, it says whether a retry may help (Temporary) and whether the call may have
// taken effect although no definite answer came (MayHaveExecuted): a command that might have
// unlocked the car must never be sent again automatically. Its text carries the upstream type
// and code for logs, never the upstream body or any token.
type UpstreamError struct {
	// Err is the domain sentinel the failure maps to; transports use its kind and code.
	Err *Error
	// Op names the call, e.g. "send security command".
	Op string
	// Status is the HTTP status, 0 when no answer came.
	Status int
	// Type and Code are the upstream's error type and code (or the OAuth error), for logs.
	Type, Code string
	// RequestID is Smartcar's SC-Request-Id, kept in the command history for support.
	RequestID string
	// RetryAfter is the upstream's Retry-After, zero when it named none.
	RetryAfter time.Duration
	// Transient is what Temporary reports.
	Transient bool
	// PossiblyExecuted is what MayHaveExecuted reports.
	PossiblyExecuted bool
	// Cause is the transport error behind a missing answer (timeout, reset), if any.
	Cause error
}

// Error names the call, the domain code, the upstream classification and the request id.
func (e *UpstreamError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(strings.ToLower(e.Err.Code))
	}
	if e.Type != "" || e.Code != "" {
		fmt.Fprintf(&b, " (upstream %s:%s)", e.Type, e.Code)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, " status %d", e.Status)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " request %s", e.RequestID)
	}
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap exposes the domain error (for errors.Is and KindOf) and the transport cause (for
// errors.Is(err, context.DeadlineExceeded)).
func (e *UpstreamError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// Temporary reports whether the same request may succeed later without anyone's action.
func (e *UpstreamError) Temporary() bool { return e.Transient }

// MayHaveExecuted reports whether a call with effects (a command, a token grant, a disconnect)
// was sent and may have taken effect although no definite answer came. Reads never set it.
func (e *UpstreamError) MayHaveExecuted() bool { return e.PossiblyExecuted }

// ShouldRetry is true only for temporary failures that provably had no effect, the one case an
// automatic retry is safe.
func (e *UpstreamError) ShouldRetry() bool { return e.Transient && !e.PossiblyExecuted }

// LogValue gives logs the classification as fields.
func (e *UpstreamError) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("op", e.Op), slog.Int("status", e.Status),
		slog.String("upstream_type", e.Type), slog.String("upstream_code", e.Code),
		slog.String("request_id", e.RequestID), slog.Bool("temporary", e.Transient),
		slog.Bool("may_have_executed", e.PossiblyExecuted)}
	if e.Err != nil {
		attrs = append(attrs, slog.String("code", e.Err.Code))
	}
	if e.RetryAfter > 0 {
		attrs = append(attrs, slog.Duration("retry_after", e.RetryAfter))
	}
	if e.Cause != nil {
		attrs = append(attrs, slog.String("cause", e.Cause.Error()))
	}
	return slog.GroupValue(attrs...)
}

// AsUpstream returns the first *UpstreamError in err's chain, or nil.
func AsUpstream(err error) *UpstreamError {
	if e, ok := errors.AsType[*UpstreamError](err); ok {
		return e
	}
	return nil
}
