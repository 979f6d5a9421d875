package postgres

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/betterkey/backend/domain"
)

// Guard statements: extend a lease its command still holds, and release a command's guard.
const (
	renewLease  = `UPDATE command_guards SET lease_expires_at = ? WHERE command_id = ? AND lease_expires_at > ?`
	dropGuardOf = `DELETE FROM command_guards WHERE command_id = ?`
)

// lockRow locks the rows a query reads (FOR UPDATE); lockOrSkip also skips rows another
// transaction holds (FOR UPDATE SKIP LOCKED). SQLite has no row locks (GORM drops the clause);
// there every transaction already holds the database's single write lock, taken by BEGIN
// IMMEDIATE on the one writer connection.
func lockRow() clause.Locking { return clause.Locking{Strength: clause.LockingStrengthUpdate} }

func lockOrSkip() clause.Locking {
	return clause.Locking{Strength: clause.LockingStrengthUpdate, Options: clause.LockingOptionsSkipLocked}
}

// Dispatch implements ports.CommandStore under the command's row lock.
func (s *Commands) Dispatch(ctx context.Context, id domain.CommandID, now, leaseUntil time.Time) (domain.Command, error) {
	if !domain.ValidID(string(id)) {
		return domain.Command{}, fmt.Errorf("dispatch command: %w", domain.ErrNotFound)
	}
	var out domain.Command
	err := s.db.transact(ctx, func(tx *gorm.DB) error {
		var r commandRow
		if err := tx.Clauses(lockRow()).Where("id = ?", string(id)).Take(&r).Error; err != nil {
			return translate("lock command", err)
		}
		var err error
		out, err = dispatchRow(tx, r, dbTime(now), dbTime(leaseUntil))
		return err
	})
	if err != nil {
		return domain.Command{}, fmt.Errorf("dispatch command: %w", err)
	}
	return out, nil
}

// dispatchRow moves the locked row r to dispatched and extends its lease, which it must still
// hold.
func dispatchRow(tx *gorm.DB, r commandRow, now, leaseUntil time.Time) (domain.Command, error) {
	c := r.toDomain()
	if err := c.Dispatch(now); err != nil {
		return domain.Command{}, err
	}
	res := tx.Exec(renewLease, leaseUntil, r.ID, now)
	if res.Error != nil {
		return domain.Command{}, translate("extend command lease", res.Error)
	}
	if res.RowsAffected == 0 {
		return domain.Command{}, fmt.Errorf("lease lost: %w", domain.ErrCommandStateConflict)
	}
	next := commandFromDomain(c)
	if ok, err := saveCommand(tx, next, domain.CommandAccepted); err != nil || !ok {
		return domain.Command{}, fmt.Errorf("save dispatched command: %w", orConflict(err))
	}
	return next.toDomain(), nil
}

// orConflict is err, or the state conflict a compare-and-set that matched nothing means.
func orConflict(err error) error {
	if err != nil {
		return err
	}
	return domain.ErrCommandStateConflict
}

// ClaimAccepted implements ports.CommandStore. On PostgreSQL the candidates are locked with FOR
// UPDATE SKIP LOCKED, so replicas claiming at once split the work instead of queueing on it.
func (s *Commands) ClaimAccepted(ctx context.Context, createdBefore, now, leaseUntil time.Time, limit int) ([]domain.Command, error) {
	if limit <= 0 {
		return nil, nil
	}
	now, leaseUntil = dbTime(now), dbTime(leaseUntil)
	var out []domain.Command
	err := s.db.transact(ctx, func(tx *gorm.DB) error {
		out = nil
		var rows []commandRow
		err := tx.Clauses(lockOrSkip()).
			Where("status = ? AND created_at < ? AND deadline_at > ?", string(domain.CommandAccepted), dbTime(createdBefore), now).
			Where("EXISTS (SELECT 1 FROM command_guards g WHERE g.command_id = commands.id AND g.lease_expires_at > ?)", now).
			Order("created_at").Limit(limit).Find(&rows).Error
		if err != nil {
			return translate("find accepted commands", err)
		}
		for _, r := range rows {
			c, err := dispatchRow(tx, r, now, leaseUntil)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim accepted commands: %w", err)
	}
	return out, nil
}

// Renew implements ports.CommandStore with one conditional UPDATE.
func (s *Commands) Renew(ctx context.Context, id domain.CommandID, now, leaseUntil time.Time) (bool, error) {
	if !domain.ValidID(string(id)) {
		return false, nil
	}
	res := s.db.w.WithContext(ctx).Exec(renewLease, dbTime(leaseUntil), string(id), dbTime(now))
	if res.Error != nil {
		return false, translate("renew command lease", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// Update implements ports.CommandStore under the command's row lock; a final status releases the
// guard in the same transaction. When fn returns an error the transaction rolls back and that
// very error is returned.
func (s *Commands) Update(ctx context.Context, id domain.CommandID, fn func(*domain.Command) error) (domain.Command, error) {
	if !domain.ValidID(string(id)) {
		return domain.Command{}, fmt.Errorf("update command: %w", domain.ErrNotFound)
	}
	var (
		saved domain.Command
		fnErr error
	)
	err := s.db.transact(ctx, func(tx *gorm.DB) error {
		var r commandRow
		if err := tx.Clauses(lockRow()).Where("id = ?", string(id)).Take(&r).Error; err != nil {
			return translate("lock command", err)
		}
		before := r.toDomain()
		if before.Status.Final() {
			return fmt.Errorf("it is %s: %w", before.Status, domain.ErrCommandStateConflict)
		}
		next := before
		if fnErr = fn(&next); fnErr != nil {
			return fnErr
		}
		next = keepImmutable(before, next)
		if next.Status != before.Status && !before.Status.CanBecome(next.Status) {
			return fmt.Errorf("%s to %s: %w", before.Status, next.Status, domain.ErrCommandStateConflict)
		}
		row := commandFromDomain(next)
		if ok, err := saveCommand(tx, row, before.Status); err != nil || !ok {
			return orConflict(err)
		}
		if next.Status.Final() {
			if err := tx.Exec(dropGuardOf, row.ID).Error; err != nil {
				return translate("release vehicle guard", err)
			}
		}
		saved = row.toDomain()
		return nil
	})
	if fnErr != nil {
		return domain.Command{}, fnErr
	}
	if err != nil {
		return domain.Command{}, fmt.Errorf("update command: %w", err)
	}
	return saved, nil
}

// keepImmutable restores what an update may not change.
func keepImmutable(before, next domain.Command) domain.Command {
	next.ID, next.UserID, next.VehicleID, next.ConnectionID = before.ID, before.UserID, before.VehicleID, before.ConnectionID
	next.Action, next.IdempotencyKey, next.SessionID, next.Device = before.Action, before.IdempotencyKey, before.SessionID, before.Device
	next.CreatedAt, next.Deadline = before.CreatedAt, before.Deadline
	return next
}

// Sweep implements ports.CommandStore. Candidates are in flight and either hold no live lease or
// are accepted past their deadline; on PostgreSQL they are locked with SKIP LOCKED, so a sweep
// never waits for a worker finishing the same command, and two sweeps split the work.
func (s *Commands) Sweep(ctx context.Context, now time.Time, limit int) ([]domain.Command, error) {
	if limit <= 0 {
		return nil, nil
	}
	now = dbTime(now)
	var out []domain.Command
	err := s.db.transact(ctx, func(tx *gorm.DB) error {
		out = nil
		var rows []commandRow
		err := tx.Clauses(lockOrSkip()).Where(whereInFlight).
			Where(`((status = ? AND deadline_at <= ?)
	OR NOT EXISTS (SELECT 1 FROM command_guards g WHERE g.command_id = commands.id AND g.lease_expires_at > ?))`,
				string(domain.CommandAccepted), now, now).
			Order("created_at").Limit(limit).Find(&rows).Error
		if err != nil {
			return translate("find abandoned commands", err)
		}
		for _, r := range rows {
			c := r.toDomain()
			if err := c.Abandon(now); err != nil {
				return err
			}
			row := commandFromDomain(c)
			if ok, err := saveCommand(tx, row, domain.CommandStatus(r.Status)); err != nil || !ok {
				return orConflict(err)
			}
			if err := tx.Exec(dropGuardOf, row.ID).Error; err != nil {
				return translate("release vehicle guard", err)
			}
			out = append(out, row.toDomain())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sweep commands: %w", err)
	}
	return out, nil
}
