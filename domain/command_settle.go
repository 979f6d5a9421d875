package domain

import "time"

// SettleWindow bounds how long after its dispatch an observation can still vouch for an unknown
// command: Smartcar may take up to 300 s to reach the car. A lock state seen later (the owner used
// a physical key, the car auto-locked) says nothing about the command and must not rewrite its
// history into a success.
const SettleWindow = 6 * time.Minute

// Settle resolves an unknown command from a lock state the vehicle reported afterwards (a
// Smartcar webhook): when the vehicle was observed, after the command was dispatched, in the
// state the command asked for (locked after a lock, unlocked after an unlock), the command did
// what it was sent for and becomes succeeded; its error code, which only said why the outcome
// was unknown, is cleared. Anything else (another state, an observation from before the dispatch,
// an observation more than SettleWindow after the dispatch, a command that is not unknown) proves nothing and leaves the command as it is; it reports
// whether it settled.
//
// This is the one move out of a final state. Unknown is final for the command's worker (it is
// never sent again, whatever happens), but not for what the owner is told: a later observation
// may turn "we don't know" into "it worked". It never turns anything into a failure, since the
// state may have changed again for other reasons (a physical key, an auto-lock).
func (c *Command) Settle(locked bool, observedAt, now time.Time) bool {
	if c.Status != CommandUnknown || c.DispatchedAt == nil || !observedAt.After(*c.DispatchedAt) ||
		observedAt.After(c.DispatchedAt.Add(SettleWindow)) {
		return false
	}
	if locked != (c.Action == CommandLock) {
		return false
	}
	c.Status, c.ErrorCode, c.UpdatedAt = CommandSucceeded, "", now
	return true
}
