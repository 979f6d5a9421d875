package postgres

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

var _ ports.CommandSettler = (*Commands)(nil)

// whereSettleable selects a vehicle's unknown commands of one action dispatched before an
// observation: what SettleUnknown might settle. The status is a literal so that even a generic
// plan matches the partial index of unknown commands.
const whereSettleable = "vehicle_id = ? AND status = 'unknown' AND action = ? AND dispatched_at < ?"

// SettleUnknown implements ports.CommandSettler. The vehicle's unknown commands of the observed
// action dispatched before the observation are read with their rows locked, settled by the
// domain rule and written back with the store's compare-and-set on the unknown status, so two
// webhooks settling the same command at once save it once.
func (s *Commands) SettleUnknown(ctx context.Context, vehicle domain.VehicleID, locked bool, observedAt, now time.Time) ([]domain.Command, error) {
	if !domain.ValidID(string(vehicle)) {
		return nil, nil
	}
	action := domain.CommandUnlock
	if locked {
		action = domain.CommandLock
	}
	now = dbTime(now)
	// Nearly every lock state a webhook reports finds nothing to settle: a plain read over the
	// partial index of unknown commands answers that in one round trip, without a transaction
	// (and, on SQLite, without the single writer).
	var found int
	err := s.db.r.WithContext(ctx).Raw("SELECT count(*) FROM (SELECT 1 FROM commands WHERE "+whereSettleable+" LIMIT 1) t",
		string(vehicle), string(action), observedAt.UTC()).Scan(&found).Error
	if err != nil {
		return nil, translate("find unknown commands", err)
	}
	if found == 0 {
		return nil, nil
	}
	var out []domain.Command
	err = s.db.transact(ctx, func(tx *gorm.DB) error {
		out = nil
		var rows []commandRow
		err := tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).
			Where(whereSettleable, string(vehicle), string(action), observedAt.UTC()).
			Order("created_at").Find(&rows).Error
		if err != nil {
			return translate("find unknown commands", err)
		}
		for _, r := range rows {
			c := r.toDomain()
			if !c.Settle(locked, observedAt, now) {
				continue
			}
			row := commandFromDomain(c)
			ok, err := saveCommand(tx, row, domain.CommandUnknown)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, row.toDomain())
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("settle unknown commands: %w", err)
	}
	return out, nil
}
