package domain

import "time"

// AuditEntry is a lock or unlock command as the audit log keeps it after its owner's account is
// erased (SPEC §3): what was done, when and how it ended, with the account and the vehicle only
// as pseudonyms drawn at random for that erasure, which nothing else in the system maps back to
// a person or a car. Sessions, devices, idempotency keys and upstream request ids are not kept.
type AuditEntry struct {
	ID               string
	AccountPseudonym string
	VehiclePseudonym string
	Action           CommandAction
	Status           CommandStatus
	ErrorCode        string
	CreatedAt        time.Time
	DispatchedAt     *time.Time
	FinishedAt       *time.Time
	ArchivedAt       time.Time
}

// PseudonymizeHistory turns one account's commands into audit entries archived at now: one fresh
// pseudonym for the account, one per vehicle, and a fresh id per entry (a command id the owner's
// phone still holds would otherwise link an entry back to them).
func PseudonymizeHistory(cmds []Command, now time.Time) []AuditEntry {
	account := newUUID()
	vehicles := map[VehicleID]string{}
	out := make([]AuditEntry, 0, len(cmds))
	for _, c := range cmds {
		v, ok := vehicles[c.VehicleID]
		if !ok {
			v = newUUID()
			vehicles[c.VehicleID] = v
		}
		out = append(out, AuditEntry{
			ID: newUUID(), AccountPseudonym: account, VehiclePseudonym: v,
			Action: c.Action, Status: c.Status, ErrorCode: c.ErrorCode,
			CreatedAt: c.CreatedAt, DispatchedAt: c.DispatchedAt, FinishedAt: c.FinishedAt, ArchivedAt: now,
		})
	}
	return out
}
