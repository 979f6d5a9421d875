package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Admission is load, decide, persist in one transaction: the store locks what orders admissions,
// reads the domain.AdmissionState, lets domain.DecideAdmission decide, and writes what it
// decided. The rule itself lives only in the domain, so the memory store and this one cannot
// disagree about it.

// lockOwner takes a per-user advisory lock for the rest of the transaction on PostgreSQL, so that
// every later statement of the admission sees every earlier admission of the user, committed on
// any replica: that is what makes the idempotency lookup and the rate-limit count exact, and,
// since only a vehicle's owner commands it, what orders the admissions of one vehicle. Different
// users never wait for each other (a hash collision only makes two queue briefly); the first key
// is a constant namespace ("BKC\x01"). SQLite needs none: BEGIN IMMEDIATE on its single writer
// already orders every write transaction.
const lockOwner = `SELECT pg_advisory_xact_lock(1112228609, hashtext(?))`

// loadAdmission reads the state in one round trip, one row per fact: the vehicle's lease, the
// user's command with the idempotency key, and the creation times of the user's latest commands
// of the action inside the window (newest first, at most the limit's Max, so the cost is bounded
// by the limit). Each part is served by an index: the guard's primary key, the unique
// (user, idempotency key) and the rate-limit index.
const loadAdmission = `SELECT 'lease', CAST(command_id AS text), lease_expires_at FROM command_guards WHERE vehicle_id = ?
UNION ALL
SELECT 'prior', CAST(id AS text), created_at FROM commands WHERE user_id = ? AND idempotency_key = ?
UNION ALL
SELECT * FROM (SELECT 'recent', '', created_at FROM commands WHERE user_id = ? AND action = ? AND created_at > ?
	ORDER BY created_at DESC LIMIT ?) recent`

// claimLease takes the vehicle's guard: a new row, or the row of a lease that ran out. A lease
// held meanwhile matches nothing, which only a writer that ignored the owner lock could cause.
const claimLease = `INSERT INTO command_guards (vehicle_id, user_id, command_id, lease_expires_at)
VALUES (?, ?, ?, ?)
ON CONFLICT (vehicle_id) DO UPDATE SET user_id = excluded.user_id, command_id = excluded.command_id,
	lease_expires_at = excluded.lease_expires_at
WHERE command_guards.lease_expires_at <= ?`

// claimAndInsert is claimLease and the command's insert in one PostgreSQL statement: the insert
// reads the claim's RETURNING, so it inserts nothing when the lease was not taken.
const claimAndInsert = `WITH lease AS (` + claimLease + ` RETURNING 1)
INSERT INTO commands (id, user_id, vehicle_id, connection_id, session_id, device, action,
	status, idempotency_key, error_code, upstream_request_id, retry_after_seconds, created_at, updated_at,
	dispatched_at, finished_at, deadline_at)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM lease`

// errLeaseTaken ends an admission whose lease was taken between its load and its claim.
var errLeaseTaken = errors.New("vehicle lease taken meanwhile")

// Admit implements ports.CommandStore: BEGIN, the owner lock (PostgreSQL), the state, the lease
// claim, the insert, COMMIT; a replay reads the original command instead of writing, and a
// takeover ends what the expired lease left in flight.
func (s *Commands) Admit(ctx context.Context, cmd domain.Command, leaseUntil time.Time, limit ports.CommandRateLimit, now time.Time) (ports.Admission, error) {
	if err := cmd.Validate(); err != nil {
		return ports.Admission{}, fmt.Errorf("admit command: %w", err)
	}
	if cmd.Status != domain.CommandAccepted {
		return ports.Admission{}, fmt.Errorf("admit command: %w", domain.Invalid("command.status", "must be accepted"))
	}
	row := commandFromDomain(cmd)
	now, leaseUntil = dbTime(now), dbTime(leaseUntil)
	var out ports.Admission
	for attempt := 0; ; attempt++ {
		err := s.db.transact(ctx, func(tx *gorm.DB) error {
			if s.db.dialect == DialectPostgres {
				if err := tx.Exec(lockOwner, row.UserID).Error; err != nil {
					return translate("lock command owner", err)
				}
			}
			st, err := readAdmission(tx, row, limit, now)
			if err != nil {
				return err
			}
			decision, err := domain.DecideAdmission(st, limit, now)
			switch {
			case err != nil:
				return err
			case decision.Replay:
				out = ports.Admission{Command: *st.Prior, Replayed: true}
				return nil
			case decision.TakeOver:
				if err := abandonInFlight(tx, row.VehicleID, now); err != nil {
					return err
				}
			}
			if err := s.persistAdmitted(tx, row, leaseUntil, now); err != nil {
				return err
			}
			out = ports.Admission{Command: row.toDomain()}
			return nil
		})
		switch {
		case errors.Is(err, errLeaseTaken) && attempt == 0:
			continue // decide again on what the other writer left
		case errors.Is(err, domain.ErrConflict) && row.IdempotencyKey != nil && attempt == 0:
			continue // a first use of the key raced this one (only without the owner lock): a replay now
		}
		if err != nil {
			if _, refused := errors.AsType[*domain.CommandRefusal](err); refused {
				return ports.Admission{}, err
			}
			return ports.Admission{}, fmt.Errorf("admit command: %w", err)
		}
		return out, nil
	}
}

// persistAdmitted takes the vehicle's lease for row and inserts it: one statement on PostgreSQL,
// two on SQLite (which has no data-modifying WITH, and no round trips to save).
func (s *Commands) persistAdmitted(tx *gorm.DB, row commandRow, leaseUntil, now time.Time) error {
	var res *gorm.DB
	if s.db.dialect == DialectPostgres {
		res = tx.Exec(claimAndInsert, row.VehicleID, row.UserID, row.ID, leaseUntil, now,
			row.ID, row.UserID, row.VehicleID, row.ConnectionID, row.SessionID, row.Device, row.Action, row.Status,
			row.IdempotencyKey, row.ErrorCode, row.UpstreamRequestID, row.RetryAfterSeconds, row.CreatedAt, row.UpdatedAt,
			row.DispatchedAt, row.FinishedAt, row.DeadlineAt)
	} else {
		res = tx.Exec(claimLease, row.VehicleID, row.UserID, row.ID, leaseUntil, now)
	}
	switch {
	case res.Error != nil:
		return claimError(res.Error)
	case res.RowsAffected == 0:
		return errLeaseTaken
	case s.db.dialect == DialectPostgres:
		return nil
	}
	return translate("insert command", insertCommandRow(tx, row))
}

// readAdmission loads the domain.AdmissionState of row inside tx.
func readAdmission(tx *gorm.DB, row commandRow, limit ports.CommandRateLimit, now time.Time) (domain.AdmissionState, error) {
	var st domain.AdmissionState
	rows, err := tx.Raw(loadAdmission, row.VehicleID, row.UserID, row.IdempotencyKey, row.UserID, row.Action,
		now.Add(-limit.Window), max(limit.Max, 0)).Rows()
	if err != nil {
		return st, translate("read admission state", err)
	}
	defer rows.Close()
	var prior string
	for rows.Next() {
		var (
			kind, id string
			at       flexTime
		)
		if err := rows.Scan(&kind, &id, &at); err != nil {
			return st, translate("read admission state", err)
		}
		switch kind {
		case "lease":
			st.Lease = &domain.CommandLease{CommandID: domain.CommandID(id), Until: at.t}
		case "prior":
			prior = id
		case "recent":
			st.Recent = append(st.Recent, at.t)
		}
	}
	if err := rows.Err(); err != nil {
		return st, translate("read admission state", err)
	}
	if prior != "" {
		var r commandRow
		if err := tx.Where("id = ?", prior).Take(&r).Error; err != nil {
			return st, translate("read replayed command", err)
		}
		c := r.toDomain()
		st.Prior = &c
	}
	return st, nil
}

// claimError translates a failed lease claim; a vehicle that does not exist fails its foreign
// key.
func claimError(err error) error {
	if errors.Is(err, gorm.ErrForeignKeyViolated) || isForeignKeyViolation(err) {
		return fmt.Errorf("claim vehicle guard: vehicle: %w", domain.ErrNotFound)
	}
	return translate("claim vehicle guard", err)
}

// byIdempotencyKey finds the user's command with the key.
func byIdempotencyKey(tx *gorm.DB, user, key string) (domain.Command, bool, error) {
	var rows []commandRow
	if err := tx.Where("user_id = ? AND idempotency_key = ?", user, key).Limit(1).Find(&rows).Error; err != nil {
		return domain.Command{}, false, translate("find command by idempotency key", err)
	}
	if len(rows) == 0 {
		return domain.Command{}, false, nil
	}
	return rows[0].toDomain(), true, nil
}

// abandonInFlight ends the commands of the vehicle that are still in flight although their lease
// ran out: their worker is gone (domain.Command.Abandon).
func abandonInFlight(tx *gorm.DB, vehicle string, now time.Time) error {
	var rows []commandRow
	if err := tx.Where("vehicle_id = ? AND "+whereInFlight, vehicle).Find(&rows).Error; err != nil {
		return translate("find abandoned commands", err)
	}
	for _, r := range rows {
		c := r.toDomain()
		if err := c.Abandon(now); err != nil {
			return fmt.Errorf("abandon command: %w", err)
		}
		if _, err := saveCommand(tx, commandFromDomain(c), domain.CommandStatus(r.Status)); err != nil {
			return err
		}
	}
	return nil
}

// isForeignKeyViolation recognises a foreign key failure that GORM did not translate:
// PostgreSQL's 23503 and SQLite's SQLITE_CONSTRAINT_FOREIGNKEY (787).
func isForeignKeyViolation(err error) bool {
	if pg, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pg.Code == "23503"
	}
	if c, ok := errors.AsType[interface {
		error
		Code() int
	}](err); ok {
		return c.Code() == 787
	}
	return false
}
