package postgres

import (
	"context"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/betterkey/backend/domain"
)

// auditRow is the command_audit table.
type auditRow struct {
	ID               string     `gorm:"column:id;primaryKey"`
	AccountPseudonym string     `gorm:"column:account_pseudonym"`
	VehiclePseudonym string     `gorm:"column:vehicle_pseudonym"`
	Action           string     `gorm:"column:action"`
	Status           string     `gorm:"column:status"`
	ErrorCode        string     `gorm:"column:error_code"`
	CreatedAt        time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	DispatchedAt     *time.Time `gorm:"column:dispatched_at"`
	FinishedAt       *time.Time `gorm:"column:finished_at"`
	ArchivedAt       time.Time  `gorm:"column:archived_at"`
}

func (auditRow) TableName() string { return "command_audit" }

// ArchiveHistory implements ports.CommandStore: the user's commands are read under row locks,
// written to command_audit as pseudonymised entries and deleted, all in one transaction, so a
// crash leaves either the history or its audit entries, never both or neither.
func (s *Commands) ArchiveHistory(ctx context.Context, user domain.UserID, now time.Time) ([]domain.AuditEntry, error) {
	if !domain.ValidID(string(user)) {
		return nil, nil
	}
	var entries []domain.AuditEntry
	err := s.db.transact(ctx, func(tx *gorm.DB) error {
		q := tx.Where("user_id = ?", string(user)).Order("created_at, id")
		if s.db.dialect == DialectPostgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		var rows []commandRow
		if err := q.Find(&rows).Error; err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		cmds := make([]domain.Command, len(rows))
		ids := make([]string, len(rows))
		for i, r := range rows {
			cmds[i], ids[i] = r.toDomain(), r.ID
		}
		entries = domain.PseudonymizeHistory(cmds, dbTime(now))
		audit := make([]auditRow, len(entries))
		for i, e := range entries {
			audit[i] = auditRow{ID: e.ID, AccountPseudonym: e.AccountPseudonym, VehiclePseudonym: e.VehiclePseudonym,
				Action: string(e.Action), Status: string(e.Status), ErrorCode: e.ErrorCode, CreatedAt: dbTime(e.CreatedAt),
				DispatchedAt: dbTimePtr(e.DispatchedAt), FinishedAt: dbTimePtr(e.FinishedAt), ArchivedAt: e.ArchivedAt}
		}
		if err := tx.CreateInBatches(audit, 500).Error; err != nil {
			return err
		}
		for chunk := range slices.Chunk(ids, 500) {
			if err := tx.Where("id IN ?", chunk).Delete(&commandRow{}).Error; err != nil {
				return err
			}
		}
		// A guard outlives its command only while its vehicle exists; the erasure removed those.
		return tx.Exec("DELETE FROM command_guards WHERE user_id = ?", string(user)).Error
	})
	if err != nil {
		return nil, translate("archive command history", err)
	}
	return entries, nil
}
