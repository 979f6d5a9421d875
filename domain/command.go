package domain

import (
	"fmt"
	"time"
)

// CommandID identifies one lock or unlock command; the app polls it and support finds it in the
// history by it.
type CommandID string

// NewCommandID returns a fresh random command id.
func NewCommandID() CommandID { return CommandID(newUUID()) }

// CommandAction is what a command asks of the vehicle, spelled as the app sends it.
type CommandAction string

// The two actions a digital key has.
const (
	CommandLock   CommandAction = "lock"
	CommandUnlock CommandAction = "unlock"
)

// ParseCommandAction accepts exactly "lock" or "unlock", so nothing the app did not mean (a typo,
// another case) ever reaches a car.
func ParseCommandAction(s string) (CommandAction, error) {
	switch a := CommandAction(s); a {
	case CommandLock, CommandUnlock:
		return a, nil
	}
	return "", ErrCommandActionInvalid
}

// Security is the action as the vehicle API spells it.
func (a CommandAction) Security() SecurityAction {
	if a == CommandUnlock {
		return SecurityUnlock
	}
	return SecurityLock
}

// CommandStatus is where a command is in its lifecycle:
// accepted → dispatched → succeeded | failed | unknown | expired, and accepted → expired.
type CommandStatus string

// The lifecycle states. Succeeded means the upstream sent the command to the vehicle, which is
// all Smartcar promises; unknown means it may or may not have reached the vehicle.
const (
	CommandAccepted   CommandStatus = "accepted"
	CommandDispatched CommandStatus = "dispatched"
	CommandSucceeded  CommandStatus = "succeeded"
	CommandFailed     CommandStatus = "failed"
	CommandUnknown    CommandStatus = "unknown"
	CommandExpired    CommandStatus = "expired"
)

// Valid reports whether s is one of the lifecycle states, so a store never keeps another.
func (s CommandStatus) Valid() bool {
	switch s {
	case CommandAccepted, CommandDispatched, CommandSucceeded, CommandFailed, CommandUnknown, CommandExpired:
		return true
	}
	return false
}

// Final reports whether the command has ended; a final command never changes again.
func (s CommandStatus) Final() bool {
	return s == CommandSucceeded || s == CommandFailed || s == CommandUnknown || s == CommandExpired
}

// InFlight reports whether the command still holds its vehicle's guard.
func (s CommandStatus) InFlight() bool { return s == CommandAccepted || s == CommandDispatched }

// CanBecome reports whether the lifecycle allows moving from s to next; statuses only move
// forward, which is what keeps the history append-only in meaning as well as in rows.
func (s CommandStatus) CanBecome(next CommandStatus) bool {
	switch s {
	case CommandAccepted:
		return next == CommandDispatched || next == CommandExpired
	case CommandDispatched:
		return next == CommandSucceeded || next == CommandFailed || next == CommandUnknown || next == CommandExpired
	}
	return false
}

// Command defaults and bounds (SPEC §5).
const (
	// DefaultCommandTTL is how long an accepted command may wait to be sent; past it, it expires
	// and is never sent late.
	DefaultCommandTTL = 30 * time.Second
	// MaxIdempotencyKeyLen bounds the Idempotency-Key header.
	MaxIdempotencyKeyLen = 64
)

// CheckIdempotencyKey accepts an absent key or 1 to 64 characters of A-Z, a-z, 0-9, _ and -:
// enough for a UUID, and nothing that needs escaping in a log line.
func CheckIdempotencyKey(k string) error {
	if len(k) > MaxIdempotencyKeyLen {
		return ErrIdempotencyKeyInvalid
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return ErrIdempotencyKeyInvalid
		}
	}
	return nil
}

// OperationKey is what the in-flight guard is keyed by: the authenticated user and the target
// vehicle. A vehicle has one owner, so the pair names one guard per vehicle.
type OperationKey struct {
	User    UserID
	Vehicle VehicleID
}

// String renders the key for logs.
func (k OperationKey) String() string { return string(k.User) + "/" + string(k.Vehicle) }

// CommandRequest is what an authenticated owner asked for, with who and where from.
type CommandRequest struct {
	UserID         UserID
	VehicleID      VehicleID
	ConnectionID   ConnectionID
	Action         CommandAction
	IdempotencyKey string
	SessionID      SessionID
	Device         Device
}

// Command is one lock or unlock and its history entry: who asked, from which device, for which
// vehicle, how it ended, Smartcar's request id for support, and its timings. Its methods are the
// only way its status changes, and they refuse every move the lifecycle does not allow.
type Command struct {
	ID                CommandID
	UserID            UserID
	VehicleID         VehicleID
	ConnectionID      ConnectionID
	Action            CommandAction
	Status            CommandStatus
	IdempotencyKey    string
	SessionID         SessionID
	Device            Device
	ErrorCode         string
	UpstreamRequestID string
	// RetryAfter is the upstream's Retry-After of a rate-limited command, passed on to the app.
	RetryAfter   time.Duration
	CreatedAt    time.Time
	UpdatedAt    time.Time
	DispatchedAt *time.Time
	FinishedAt   *time.Time
	// Deadline is when the command expires unless it has been sent (created plus the TTL).
	Deadline time.Time
}

// NewCommand returns an accepted command for r with a fresh id, created at now and expiring
// ttl later.
func NewCommand(r CommandRequest, now time.Time, ttl time.Duration) Command {
	return Command{
		ID: NewCommandID(), UserID: r.UserID, VehicleID: r.VehicleID, ConnectionID: r.ConnectionID,
		Action: r.Action, Status: CommandAccepted, IdempotencyKey: r.IdempotencyKey,
		SessionID: r.SessionID, Device: r.Device, CreatedAt: now, UpdatedAt: now, Deadline: now.Add(ttl),
	}
}

// OperationKey is the key of the guard the command holds while in flight.
func (c Command) OperationKey() OperationKey {
	return OperationKey{User: c.UserID, Vehicle: c.VehicleID}
}

// SameRequest reports whether r asks for what c was created for, which is when a replayed
// idempotency key may return c.
func (c Command) SameRequest(r CommandRequest) bool {
	return c.UserID == r.UserID && c.VehicleID == r.VehicleID && c.Action == r.Action
}

// Dispatch records that the command is about to be sent. It is refused once the deadline has
// passed (ErrCommandExpired), so a command is never sent late.
func (c *Command) Dispatch(now time.Time) error {
	if c.Status != CommandAccepted {
		return c.illegal(CommandDispatched)
	}
	if !now.Before(c.Deadline) {
		return ErrCommandExpired
	}
	c.Status, c.DispatchedAt, c.UpdatedAt = CommandDispatched, &now, now
	return nil
}

// Succeed records that the upstream sent the command to the vehicle.
func (c *Command) Succeed(now time.Time, requestID string) error {
	return c.finish(CommandSucceeded, now, "", requestID, 0)
}

// Fail records a definite refusal: nothing reached the vehicle. code is the stable error code;
// retryAfter is the upstream's hint, zero when it gave none.
func (c *Command) Fail(now time.Time, code, requestID string, retryAfter time.Duration) error {
	if code == "" {
		return fmt.Errorf("fail command: %w", Invalid("error_code", "must not be empty"))
	}
	return c.finish(CommandFailed, now, code, requestID, retryAfter)
}

// MarkUnknown records that the command was sent and no definite answer came; it may have
// reached the vehicle and must never be sent again automatically.
func (c *Command) MarkUnknown(now time.Time, code, requestID string) error {
	return c.finish(CommandUnknown, now, code, requestID, 0)
}

// Expire records that the command was not sent before its deadline and never will be.
func (c *Command) Expire(now time.Time) error {
	return c.finish(CommandExpired, now, ErrCommandExpired.Code, "", 0)
}

// Abandon ends a command whose worker is gone (its guard lease ran out): one never dispatched
// expires, one dispatched may have been sent and becomes unknown.
func (c *Command) Abandon(now time.Time) error {
	if c.Status == CommandAccepted {
		return c.Expire(now)
	}
	return c.finish(CommandUnknown, now, ErrCommandAbandoned.Code, "", 0)
}

func (c *Command) finish(to CommandStatus, now time.Time, code, requestID string, retryAfter time.Duration) error {
	if !c.Status.CanBecome(to) {
		return c.illegal(to)
	}
	c.Status, c.ErrorCode, c.RetryAfter, c.FinishedAt, c.UpdatedAt = to, code, retryAfter, &now, now
	if requestID != "" {
		c.UpstreamRequestID = requestID
	}
	return nil
}

func (c *Command) illegal(to CommandStatus) error {
	return fmt.Errorf("move command from %s to %s: %w", c.Status, to, ErrCommandStateConflict)
}

// CommandRefusal is a refused submission that tells the app when to try again and, for a command
// already in flight, which command to follow instead of sending another.
type CommandRefusal struct {
	// Err is ErrCommandInFlight or ErrCommandRateLimited.
	Err *Error
	// CommandID is the command holding the vehicle's guard, for ErrCommandInFlight.
	CommandID CommandID
	// RetryAfter is the time until a new command may be admitted.
	RetryAfter time.Duration
}

// Error names the refusal, the holder and the wait, for logs.
func (e *CommandRefusal) Error() string {
	if e.CommandID != "" {
		return fmt.Sprintf("admit command: %s (held by command %s, retry after %s)", e.Err.Msg, e.CommandID, e.RetryAfter)
	}
	return fmt.Sprintf("admit command: %s (retry after %s)", e.Err.Msg, e.RetryAfter)
}

// Unwrap exposes the classified error to errors.Is and KindOf.
func (e *CommandRefusal) Unwrap() error { return e.Err }

// RetryAfterSeconds rounds the wait up to whole seconds, at least one, the unit of Retry-After.
func (e *CommandRefusal) RetryAfterSeconds() int { return CeilSeconds(e.RetryAfter) }

// CeilSeconds rounds d up to whole seconds, at least one: a Retry-After of zero would invite an
// immediate retry that fails again.
func CeilSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// Command errors with their stable codes (SPEC §5, §11).
var (
	ErrCommandInFlight       = &Error{Kind: KindConflict, Code: "COMMAND_IN_FLIGHT", Msg: "another command for this vehicle is still in progress"}
	ErrCommandRateLimited    = &Error{Kind: KindRateLimited, Code: "RATE_LIMITED", Msg: "too many commands, try again later"}
	ErrCommandActionInvalid  = &Error{Kind: KindInvalid, Code: "ACTION_INVALID", Msg: "action must be lock or unlock"}
	ErrIdempotencyKeyInvalid = &Error{Kind: KindInvalid, Code: "IDEMPOTENCY_KEY_INVALID", Msg: "Idempotency-Key must be at most 64 characters of A-Z, a-z, 0-9, _ and -"}
	// ErrIdempotencyKeyReused: the key names a command for another vehicle or action; returning
	// that command would confirm something the app did not ask for.
	ErrIdempotencyKeyReused = &Error{Kind: KindConflict, Code: "IDEMPOTENCY_KEY_REUSED", Msg: "the Idempotency-Key was used for a different command"}
	// ErrCommandExpired: the command was not sent within its TTL and never will be.
	ErrCommandExpired = &Error{Kind: KindFailedPrecondition, Code: "COMMAND_EXPIRED", Msg: "the command was not sent in time and will not be sent"}
	// ErrCommandAbandoned: the server handling a sent command stopped before the answer came.
	ErrCommandAbandoned = &Error{Kind: KindUnavailable, Code: "COMMAND_ABANDONED", Msg: "the command was interrupted; whether the vehicle received it is unknown"}
	// ErrCommandStateConflict: a lifecycle move the command's current status does not allow,
	// usually because another replica ended it first.
	ErrCommandStateConflict = &Error{Kind: KindConflict, Code: "COMMAND_STATE_CONFLICT", Msg: "the command has already moved on"}
)

// Validate refuses a command the stores cannot keep faithfully (ids that are not canonical UUIDs,
// an unknown action or status, a malformed idempotency key), as a KindInvalid error.
func (c Command) Validate() error {
	switch {
	case !ValidID(string(c.ID)), !ValidID(string(c.UserID)), !ValidID(string(c.VehicleID)),
		!ValidID(string(c.ConnectionID)):
		return Invalid("command", "ids must be canonical uuids")
	case c.SessionID != "" && !ValidID(string(c.SessionID)):
		return Invalid("command.session_id", "must be a canonical uuid")
	case c.Action != CommandLock && c.Action != CommandUnlock:
		return Invalid("command.action", "must be lock or unlock")
	case !c.Status.Valid():
		return Invalid("command.status", "is not a lifecycle state")
	}
	return CheckIdempotencyKey(c.IdempotencyKey)
}
