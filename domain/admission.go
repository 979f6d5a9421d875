package domain

import (
	"slices"
	"time"
)

// CommandRateLimit bounds how many commands of one action a user may have admitted within a
// sliding window; a zero Max means no limit.
type CommandRateLimit struct {
	Window time.Duration
	Max    int
}

// CommandLease is a vehicle's in-flight guard: the command holding it, and until when. A lease
// that has run out means its holder's worker is gone; the next admission takes it over.
type CommandLease struct {
	CommandID CommandID
	Until     time.Time
}

// AdmissionState is what a store reads, under the locks that order admissions of one vehicle
// and of one user, about a command it is asked to admit.
type AdmissionState struct {
	// Prior is the user's command with the new command's idempotency key, when there is one.
	Prior *Command
	// Lease is the vehicle's guard, when one was ever taken.
	Lease *CommandLease
	// Recent are the creation times of the user's commands of the action that fall inside the
	// limit's window at now, in any order; a store may stop at the limit.Max newest.
	Recent []time.Time
}

// Admission is what DecideAdmission decided.
type Admission struct {
	// Replay: the idempotency key names Prior, which is the answer; nothing is stored.
	Replay bool
	// TakeOver: the command is admitted over a lease that ran out, so the commands that lease
	// left in flight are abandoned (Command.Abandon) in the same transaction.
	TakeOver bool
}

// minRetryAfter is the shortest wait a refusal names: a wait that rounds to nothing would invite
// a retry that the same rule refuses again.
const minRetryAfter = time.Second

// DecideAdmission is the rule that admits a command, in this order: a replayed idempotency key
// returns the original command, whatever else holds; a vehicle whose lease is held refuses with
// ErrCommandInFlight, naming the holder and the lease's time left; a user with limit.Max
// commands of the action in the window refuses with ErrCommandRateLimited and the wait until
// the oldest of them leaves it; otherwise the command is admitted, taking over an expired lease.
// A refusal is a *CommandRefusal whose wait is at least a second.
func DecideAdmission(st AdmissionState, limit CommandRateLimit, now time.Time) (Admission, error) {
	if st.Prior != nil {
		return Admission{Replay: true}, nil
	}
	if st.Lease != nil && now.Before(st.Lease.Until) {
		return Admission{}, &CommandRefusal{Err: ErrCommandInFlight, CommandID: st.Lease.CommandID,
			RetryAfter: max(st.Lease.Until.Sub(now), minRetryAfter)}
	}
	if limit.Max > 0 && len(st.Recent) >= limit.Max {
		newest := slices.SortedFunc(slices.Values(st.Recent), func(a, b time.Time) int { return b.Compare(a) })
		oldest := newest[limit.Max-1] // the one whose leaving the window frees a place
		return Admission{}, &CommandRefusal{Err: ErrCommandRateLimited, RetryAfter: max(oldest.Add(limit.Window).Sub(now), minRetryAfter)}
	}
	return Admission{TakeOver: st.Lease != nil}, nil
}
