package ports

import (
	"context"
	"time"

	"github.com/betterkey/backend/domain"
)

// CommandRateLimit is domain.CommandRateLimit, which the admission rule reads.
type CommandRateLimit = domain.CommandRateLimit

// Admission is what CommandStore.Admit decided for a command.
type Admission struct {
	// Command is the admitted command as stored, or on a replay the original one.
	Command domain.Command
	// Replayed is true when the user's idempotency key named an existing command: that command
	// is returned and nothing was stored or claimed.
	Replayed bool
}

// CommandStore keeps lock and unlock commands, their append-only history, and the guard that
// admits one in-flight command per vehicle across every replica. The guard is a lease: a row per
// vehicle naming the command that holds it and until when. A held lease refuses new commands for
// the vehicle; an expired one is taken over, which is how a crashed process never locks a car out
// for longer than its lease. Commands are never deleted by the store, except when ArchiveHistory
// moves an erased account's history into the audit log, and their status only moves forward
// (domain.CommandStatus.CanBecome).
//
// Implementations are safe for concurrent use; every method that changes more than one row does
// so in one transaction. Times are compared with the now the caller passes, so all replicas must
// keep their clocks in sync (NTP) to well under a lease.
type CommandStore interface {
	// Admit stores cmd (which must be accepted, else a KindInvalid error) in one transaction:
	//   - when cmd carries an idempotency key the user has used before, it returns that command
	//     as a replay, whatever its vehicle, action or status, and stores nothing;
	//   - when the vehicle's guard lease is held at now, it fails with a *domain.CommandRefusal
	//     wrapping domain.ErrCommandInFlight, naming the holder and the lease time left;
	//   - when the user had limit.Max commands of cmd.Action admitted within limit.Window before
	//     now, it fails with a *domain.CommandRefusal wrapping domain.ErrCommandRateLimited and
	//     the time until the oldest of them leaves the window; a command in flight is reported
	//     before the rate limit;
	//   - otherwise it takes the guard with a lease until leaseUntil, ends the commands an
	//     expired lease had left in flight for the vehicle (domain.Command.Abandon), and stores
	//     cmd.
	// A vehicle that does not exist is domain.ErrNotFound.
	Admit(ctx context.Context, cmd domain.Command, leaseUntil time.Time, limit CommandRateLimit, now time.Time) (Admission, error)
	// Get returns a command; domain.ErrNotFound if there is none with the id.
	Get(ctx context.Context, id domain.CommandID) (domain.Command, error)
	// ByIdempotencyKey returns the user's command created with the key; domain.ErrNotFound if
	// the user never used it. It lets a replay be answered before anything else is checked.
	ByIdempotencyKey(ctx context.Context, user domain.UserID, key string) (domain.Command, error)
	// History returns the user's commands for the vehicle, newest first (ties broken by id,
	// descending), at most limit, strictly older than the command before when before is not
	// empty; a before that is not one of these commands is domain.ErrNotFound.
	History(ctx context.Context, user domain.UserID, vehicle domain.VehicleID, before domain.CommandID, limit int) ([]domain.Command, error)
	// UserHistory is History across all of the user's vehicles, those since disconnected
	// included (the history outlives them): newest first, ties broken by id descending, at most
	// limit, strictly older than the command before when before is not empty; a before that is
	// not one of the user's commands is domain.ErrNotFound. The data export pages through it.
	UserHistory(ctx context.Context, user domain.UserID, before domain.CommandID, limit int) ([]domain.Command, error)
	// Dispatch moves an accepted command to dispatched (domain.Command.Dispatch at now) and
	// extends its guard lease to leaseUntil, in one transaction. It fails with an error wrapping
	// domain.ErrCommandStateConflict when the command is no longer accepted or its lease ran out,
	// and with domain.ErrCommandExpired when its deadline passed; then nothing changes.
	// domain.ErrNotFound if the command does not exist. Of concurrent calls at most one succeeds.
	Dispatch(ctx context.Context, id domain.CommandID, now, leaseUntil time.Time) (domain.Command, error)
	// ClaimAccepted dispatches, as Dispatch does, up to limit accepted commands created before
	// createdBefore whose deadline is after now and whose lease is held, oldest first, and
	// returns them. Concurrent callers (other replicas) never claim the same command; they skip
	// the ones another caller is claiming rather than wait for them. It is how commands whose
	// admitting process stopped are still sent within their TTL.
	ClaimAccepted(ctx context.Context, createdBefore, now, leaseUntil time.Time, limit int) ([]domain.Command, error)
	// Renew extends the lease of the guard the command holds to leaseUntil, if it still holds it
	// at now; it reports whether it did. A worker that cannot renew must stop waiting for the
	// upstream, because another command may now be admitted for the vehicle.
	Renew(ctx context.Context, id domain.CommandID, now, leaseUntil time.Time) (bool, error)
	// Update runs fn on the command with its row locked against every other Update, Dispatch,
	// claim and sweep (across processes) and saves the result when fn returns nil; when fn
	// returns an error nothing is written and that error is returned. The id, owner, vehicle,
	// connection, action, idempotency key, session, device, creation time and deadline are
	// fixed. A status change must be one domain.CommandStatus.CanBecome allows and a final
	// command may not change at all, else an error wrapping domain.ErrCommandStateConflict.
	// When the command becomes final its guard is released in the same transaction.
	// domain.ErrNotFound if the command does not exist.
	Update(ctx context.Context, id domain.CommandID, fn func(*domain.Command) error) (domain.Command, error)
	// Sweep ends up to limit commands left in flight by a worker that is gone: those whose guard
	// lease expired at now or which hold no guard, and accepted ones past their deadline
	// (domain.Command.Abandon: accepted → expired, dispatched → unknown). It releases their
	// guards in the same transaction and returns them as saved. Concurrent sweeps never end the
	// same command twice.
	Sweep(ctx context.Context, now time.Time, limit int) ([]domain.Command, error)
	// ArchiveHistory moves every command of the user into the audit log as
	// domain.PseudonymizeHistory entries archived at now, and deletes them, in one transaction;
	// it returns the entries written. A user without commands (or archived already) yields none,
	// so an erasure that is retried archives nothing twice.
	ArchiveHistory(ctx context.Context, user domain.UserID, now time.Time) ([]domain.AuditEntry, error)
	// DeleteFinished deletes up to limit commands created before before that are no longer in
	// flight, and reports how many; an idempotency key is recognised as long as its command is
	// kept.
	DeleteFinished(ctx context.Context, before time.Time, limit int) (int, error)
	// DeleteAuditBefore deletes up to limit audit entries of commands created before before, and
	// reports how many.
	DeleteAuditBefore(ctx context.Context, before time.Time, limit int) (int, error)
}

// CommandObserver hears about command lifecycle events, for metrics. Calls must be quick and must
// not fail; the use case calls them inline.
type CommandObserver interface {
	// Admitted is called for every newly admitted command (not for replays).
	Admitted(c domain.Command)
	// Refused is called for every submission refused with a stable code (in flight, rate
	// limited, invalid, not found, ...).
	Refused(action domain.CommandAction, code string)
	// Executing moves the number of commands this process is sending by delta.
	Executing(delta int)
	// Finished is called for every command this process ended, with its final state.
	Finished(c domain.Command)
}
