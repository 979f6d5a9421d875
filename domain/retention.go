package domain

import (
	"errors"
	"fmt"
	"time"
)

// Retention is how long the service keeps what has ended. Every table that grows with use has a
// period here (or a fixed, shorter one of its own: nonces, connect states and pending links live
// minutes, retired signing keys a week), so that storage and query cost stay flat as history
// grows, and nothing personal is kept longer than it serves the user.
type Retention struct {
	// Sessions: after a session ended (revoked, or idle expired), its device list entry and
	// refresh history are kept this long for the user's and support's view of recent sign-ins.
	Sessions time.Duration
	// RefreshHistory: a rotated refresh token's hash is kept this long; a replay within it
	// revokes its session (reuse detection), after it the token is merely unknown (401). The
	// default is the absolute session lifetime: when a thief refreshes first, the owner's app
	// presents its now-rotated token whenever it next opens, and that must still end the
	// thief's session however long the app stayed closed.
	RefreshHistory time.Duration
	// Commands: a finished lock or unlock command, and its pseudonymous audit entry once the
	// account is erased, is kept this long after it was created: the owner's history.
	Commands time.Duration
	// Inbox: a settled Smartcar or Apple event is kept this long after it arrived; it is also
	// how long a redelivery of it is recognised.
	Inbox time.Duration
	// DeletionRequests: a settled account deletion request, which holds only the erased account's
	// random id, is kept this long as the record that the erasure ran.
	DeletionRequests time.Duration
}

// DefaultRetention is what the service keeps unless configured otherwise.
func DefaultRetention() Retention {
	const day = 24 * time.Hour
	return Retention{Sessions: 30 * day, RefreshHistory: 90 * day, Commands: 365 * day, Inbox: 7 * day, DeletionRequests: 30 * day}
}

// retentionBounds are the shortest and longest periods each setting accepts: shorter would break a
// promise (a redelivery processed twice, a history the user was shown vanishing the same day),
// longer is hoarding.
var retentionBounds = [...]struct {
	name     string
	get      func(Retention) time.Duration
	min, max time.Duration
}{
	{"sessions", func(r Retention) time.Duration { return r.Sessions }, time.Hour, 400 * 24 * time.Hour},
	{"refresh_history", func(r Retention) time.Duration { return r.RefreshHistory }, 24 * time.Hour, 400 * 24 * time.Hour},
	{"commands", func(r Retention) time.Duration { return r.Commands }, 30 * 24 * time.Hour, 10 * 365 * 24 * time.Hour},
	{"inbox", func(r Retention) time.Duration { return r.Inbox }, 24 * time.Hour, 90 * 24 * time.Hour},
	{"deletion_requests", func(r Retention) time.Duration { return r.DeletionRequests }, 24 * time.Hour, 400 * 24 * time.Hour},
}

// Validate reports every period outside its bounds.
func (r Retention) Validate() error {
	var errs []error
	for _, b := range retentionBounds {
		if d := b.get(r); d < b.min || d > b.max {
			errs = append(errs, Invalid("retention."+b.name, fmt.Sprintf("must be between %s and %s", b.min, b.max)))
		}
	}
	return errors.Join(errs...)
}

// RetentionCutoffs are the instants before which ended rows go, for one janitor run.
type RetentionCutoffs struct {
	// SessionsEnded: sessions revoked or idle expired before it.
	SessionsEnded time.Time
	// RefreshRotated: refresh hashes rotated away before it.
	RefreshRotated time.Time
	// CommandsCreated: finished commands (and audit entries) created before it.
	CommandsCreated time.Time
	// InboxReceived: settled Smartcar and Apple events received before it.
	InboxReceived time.Time
	// DeletionRequestsReceived: settled account deletion requests received before it.
	DeletionRequestsReceived time.Time
}

// Cutoffs returns the cut-offs of a run at now.
func (r Retention) Cutoffs(now time.Time) RetentionCutoffs {
	return RetentionCutoffs{
		SessionsEnded: now.Add(-r.Sessions), RefreshRotated: now.Add(-r.RefreshHistory),
		CommandsCreated: now.Add(-r.Commands), InboxReceived: now.Add(-r.Inbox),
		DeletionRequestsReceived: now.Add(-r.DeletionRequests),
	}
}
