package postgres

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/betterkey/backend/domain"
)

// Update implements ports.SessionStore. The row is locked for the whole transaction, so parallel
// refreshes of one session run one after the other, each seeing what the previous one saved:
// exactly one of two refreshes with the same token rotates, the other sees reuse. The id, owner
// and creation time are fixed; fn may change the rest. When fn returns an error the transaction
// rolls back and that very error is returned.
func (s *Sessions) Update(ctx context.Context, id domain.SessionID, fn func(*domain.Session) error) (domain.Session, error) {
	if !domain.ValidID(string(id)) {
		return domain.Session{}, fmt.Errorf("update session: %w", domain.ErrNotFound)
	}
	var (
		saved domain.Session
		fnErr error
	)
	err := s.db.transact(ctx, func(tx *gorm.DB) error {
		cur, err := lockSession(tx, id)
		if err != nil {
			return translate("lock session", err)
		}
		next, err := cur.toDomain()
		if err != nil {
			return err
		}
		if fnErr = fn(&next); fnErr != nil {
			return fnErr
		}
		next.ID, next.UserID, next.CreatedAt = domain.SessionID(cur.ID), domain.UserID(cur.UserID), cur.CreatedAt
		row := sessionFromDomain(next)
		if err := s.save(tx, cur, row); err != nil {
			return err
		}
		saved, err = row.toDomain()
		return err
	})
	if fnErr != nil {
		return domain.Session{}, fnErr
	}
	if err != nil {
		return domain.Session{}, fmt.Errorf("update session: %w", err)
	}
	return saved, nil
}

// save writes row over cur inside tx. A changed refresh hash must be new to the store (neither a
// current hash, which the unique index catches, nor a rotated one, which the NOT EXISTS guard
// catches), and the replaced hash goes to the history in the same transaction.
func (s *Sessions) save(tx *gorm.DB, cur, row sessionRow) error {
	rotated := string(row.RefreshHash) != string(cur.RefreshHash)
	q := tx.Model(&sessionRow{}).Where("id = ?", cur.ID)
	if rotated {
		q = q.Where("NOT EXISTS (SELECT 1 FROM session_refresh_history WHERE refresh_hash = ?)", row.RefreshHash)
	}
	res := q.Updates(map[string]any{
		"install_id":          row.InstallID,
		"device":              row.Device,
		"device_name":         row.DeviceName,
		"refresh_hash":        row.RefreshHash,
		"last_used_at":        row.LastUsedAt,
		"idle_expires_at":     row.IdleExpiresAt,
		"absolute_expires_at": row.AbsoluteExpiresAt,
		"revoked_at":          row.RevokedAt,
		"revoke_reason":       row.RevokeReason,
	})
	if res.Error != nil {
		return translate("save session", res.Error)
	}
	if res.RowsAffected == 0 { // the row is locked and exists, so only the guard can match nothing
		return fmt.Errorf("save session: refresh hash was used before: %w", domain.ErrConflict)
	}
	if !rotated {
		return nil
	}
	// The hash was rotated away by the refresh that last used the session (domain.Session.Rotate
	// sets both), so the retention of rotated hashes runs on the service's clock.
	old := historyRow{RefreshHash: cur.RefreshHash, SessionID: cur.ID, RotatedAt: row.LastUsedAt}
	return translate("remember rotated refresh hash", tx.Create(&old).Error)
}
