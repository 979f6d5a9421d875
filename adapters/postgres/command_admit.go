package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// claimGuardLocked takes the vehicle's guard on PostgreSQL: a new row, or the row of an expired
// lease, while a held lease matches nothing (the refusal). In the same statement it takes a
// per-user advisory lock for the rest of the transaction, so every later statement of the
// admission sees every earlier admission of the user, committed on any replica: that is what
// makes the idempotency lookup and the rate-limit count exact. Different users never wait for
// each other (a hash collision only makes two queue briefly); the first lock key is a constant
// namespace ("BKC\x01"). The row comes back with whether it replaced an expired lease (xmax is
// set on a row the upsert updated, zero on one it inserted).
const claimGuardLocked = `WITH owner_lock AS (SELECT pg_advisory_xact_lock(1112228609, hashtext(?)))
INSERT INTO command_guards (vehicle_id, user_id, command_id, lease_expires_at)
SELECT ?, ?, ?, ? FROM owner_lock
ON CONFLICT (vehicle_id) DO UPDATE SET user_id = excluded.user_id, command_id = excluded.command_id,
	lease_expires_at = excluded.lease_expires_at
WHERE command_guards.lease_expires_at <= ?
RETURNING xmax <> 0`

// claimGuard is claimGuardLocked for SQLite, whose single writer already orders admissions; it
// cannot tell a takeover from an insert, so the search for leftovers always runs there.
const claimGuard = `INSERT INTO command_guards (vehicle_id, user_id, command_id, lease_expires_at)
VALUES (?, ?, ?, ?)
ON CONFLICT (vehicle_id) DO UPDATE SET user_id = excluded.user_id, command_id = excluded.command_id,
	lease_expires_at = excluded.lease_expires_at
WHERE command_guards.lease_expires_at <= ?
RETURNING 1`

// insertUnderLimit inserts the command only while the owner has fewer than the limit's commands
// of its action in the window; counting stops at the limit, so the cost is bounded by it.
const insertUnderLimit = `INSERT INTO commands (id, user_id, vehicle_id, connection_id, session_id, device, action,
	status, idempotency_key, error_code, upstream_request_id, retry_after_seconds, created_at, updated_at,
	dispatched_at, finished_at, deadline_at)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
WHERE (SELECT count(*) FROM (SELECT 1 FROM commands WHERE user_id = ? AND action = ? AND created_at > ? LIMIT ?) recent) < ?`

// guardRow is the command_guards table.
type guardRow struct {
	VehicleID      string    `gorm:"column:vehicle_id;primaryKey"`
	UserID         string    `gorm:"column:user_id"`
	CommandID      string    `gorm:"column:command_id"`
	LeaseExpiresAt time.Time `gorm:"column:lease_expires_at"`
}

func (guardRow) TableName() string { return "command_guards" }

// errReplay ends an admission transaction that found the idempotency key taken.
var errReplay = errors.New("idempotency key replayed")

// Admit implements ports.CommandStore in one transaction of, usually, four round trips: BEGIN,
// the guard claim (with the per-user lock), the insert under the rate limit, COMMIT. The
// idempotency lookup, the search for what an expired lease left behind and the computation of a
// refusal's wait only run when they can matter.
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
	err := s.db.transact(ctx, func(tx *gorm.DB) error {
		claimed, tookOver, err := s.claimVehicle(tx, row, leaseUntil, now)
		if err != nil {
			return err
		}
		if row.IdempotencyKey != nil {
			prior, found, err := byIdempotencyKey(tx, row.UserID, *row.IdempotencyKey)
			if err != nil {
				return err
			}
			if found { // a replay wins over every refusal; the claim is rolled back
				out = ports.Admission{Command: prior, Replayed: true}
				return errReplay
			}
		}
		if !claimed {
			return inFlightRefusal(tx, row.VehicleID, now)
		}
		if tookOver {
			if err := abandonInFlight(tx, row.VehicleID, now); err != nil {
				return err
			}
		}
		return insertAdmitted(tx, row, limit, now)
	})
	switch {
	case errors.Is(err, errReplay):
		return out, nil
	case errors.Is(err, domain.ErrConflict) && row.IdempotencyKey != nil:
		// Two first uses of one key raced (only possible without the advisory lock); the unique
		// index let one in, so this one is a replay of it.
		prior, found, lookErr := byIdempotencyKey(s.db.w.WithContext(ctx), row.UserID, *row.IdempotencyKey)
		if lookErr == nil && found {
			return ports.Admission{Command: prior, Replayed: true}, nil
		}
	}
	if err != nil {
		if _, refused := errors.AsType[*domain.CommandRefusal](err); refused {
			return ports.Admission{}, err
		}
		return ports.Admission{}, fmt.Errorf("admit command: %w", err)
	}
	return ports.Admission{Command: row.toDomain()}, nil
}

// claimVehicle tries to take the vehicle's guard for row; it reports whether it did and whether
// that replaced an expired lease (always assumed on SQLite).
func (s *Commands) claimVehicle(tx *gorm.DB, row commandRow, leaseUntil, now time.Time) (claimed, tookOver bool, err error) {
	var rows *sql.Rows
	if s.db.dialect == DialectPostgres {
		rows, err = tx.Raw(claimGuardLocked, row.UserID, row.VehicleID, row.UserID, row.ID, leaseUntil, now).Rows()
	} else {
		rows, err = tx.Raw(claimGuard, row.VehicleID, row.UserID, row.ID, leaseUntil, now).Rows()
	}
	if err != nil {
		return false, false, claimError(err)
	}
	defer rows.Close()
	for rows.Next() {
		claimed, tookOver = true, true
		if s.db.dialect == DialectPostgres {
			if err := rows.Scan(&tookOver); err != nil {
				return false, false, claimError(err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return false, false, claimError(err)
	}
	return claimed, tookOver, nil
}

// claimError translates a failed guard claim; a vehicle that does not exist fails its foreign
// key.
func claimError(err error) error {
	if errors.Is(err, gorm.ErrForeignKeyViolated) || isForeignKeyViolation(err) {
		return fmt.Errorf("claim vehicle guard: vehicle: %w", domain.ErrNotFound)
	}
	return translate("claim vehicle guard", err)
}

// inFlightRefusal names the holder of the vehicle's guard and its lease time left.
func inFlightRefusal(tx *gorm.DB, vehicle string, now time.Time) error {
	var g guardRow
	if err := tx.Where("vehicle_id = ?", vehicle).Take(&g).Error; err != nil {
		return translate("read vehicle guard", err)
	}
	return &domain.CommandRefusal{Err: domain.ErrCommandInFlight, CommandID: domain.CommandID(g.CommandID),
		RetryAfter: g.LeaseExpiresAt.Sub(now)}
}

// insertAdmitted inserts row unless the owner is over the rate limit, in which case it reports
// the wait until the oldest of the latest limit.Max commands leaves the window.
func insertAdmitted(tx *gorm.DB, row commandRow, limit ports.CommandRateLimit, now time.Time) error {
	if limit.Max <= 0 {
		return translate("insert command", insertCommandRow(tx, row))
	}
	res := tx.Exec(insertUnderLimit, row.ID, row.UserID, row.VehicleID, row.ConnectionID, row.SessionID, row.Device,
		row.Action, row.Status, row.IdempotencyKey, row.ErrorCode, row.UpstreamRequestID, row.RetryAfterSeconds,
		row.CreatedAt, row.UpdatedAt, row.DispatchedAt, row.FinishedAt, row.DeadlineAt,
		row.UserID, row.Action, now.Add(-limit.Window), limit.Max, limit.Max)
	if res.Error != nil {
		return translate("insert command", res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	return rateRefusal(tx, row, limit, now)
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
// was just taken over: their worker is gone.
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

// rateRefusal computes the wait of a command refused by the rate limit.
func rateRefusal(tx *gorm.DB, row commandRow, limit ports.CommandRateLimit, now time.Time) error {
	rows, err := tx.Raw(`SELECT created_at FROM commands WHERE user_id = ? AND action = ? AND created_at > ?
ORDER BY created_at DESC LIMIT ?`, row.UserID, row.Action, now.Add(-limit.Window), limit.Max).Rows()
	if err != nil {
		return translate("read recent commands", err)
	}
	defer rows.Close()
	var oldest time.Time
	for rows.Next() {
		if err := rows.Scan(&oldest); err != nil {
			return translate("read recent commands", err)
		}
	}
	if err := rows.Err(); err != nil {
		return translate("read recent commands", err)
	}
	return &domain.CommandRefusal{Err: domain.ErrCommandRateLimited, RetryAfter: max(oldest.Add(limit.Window).Sub(now), time.Second)}
}

// isForeignKeyViolation recognises a foreign key failure that surfaced while reading a
// statement's rows, where GORM does not translate errors: PostgreSQL's 23503 and SQLite's
// SQLITE_CONSTRAINT_FOREIGNKEY (787).
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
