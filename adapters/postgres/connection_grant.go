package postgres

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/betterkey/backend/domain"
)

// SaveGrant implements ports.ConnectionStore in one transaction. A connection the user already
// has for the Smartcar user is locked first, as Update locks it, so a grant never interleaves
// with a refresh or a vehicle removal. It returns the given vehicles as stored, in the order
// given, with the ids and creation times of those the connection already had and their make,
// model and year as the grant reports them. Two first grants of one Smartcar user racing each
// other meet the unique (user, Smartcar user) pair: the second gets domain.ErrConflict.
func (s *Connections) SaveGrant(ctx context.Context, c domain.Connection, vehicles []domain.Vehicle) ([]domain.Vehicle, error) {
	if err := domain.ValidateGrant(c, vehicles); err != nil {
		return nil, fmt.Errorf("save grant: %w", err)
	}
	row := connectionFromDomain(c)
	var out []domain.Vehicle
	err := s.db.transact(ctx, func(tx *gorm.DB) error {
		cur, err := lockConnection(tx, "user_id = ? AND smartcar_user_id = ?", row.UserID, row.SmartcarUserID)
		if err != nil {
			return err
		}
		switch {
		case len(cur) == 0:
			if err := tx.Create(&row).Error; err != nil {
				return translate("insert connection", err)
			}
		case cur[0].ID != row.ID:
			return fmt.Errorf("the smartcar user is linked under another connection id: %w", domain.ErrConflict)
		default:
			row.CreatedAt = cur[0].CreatedAt
			if err := saveConnection(tx, row); err != nil {
				return err
			}
		}
		if err := writeSecret(tx, c.TokenBinding(), c.Tokens, s.now()); err != nil {
			return err
		}
		out, err = mergeVehicles(tx, row, vehicles)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("save grant: %w", err)
	}
	return out, nil
}

// saveConnection writes the mutable columns of row; the id, owner, Smartcar user and creation
// time never change.
func saveConnection(tx *gorm.DB, row connectionRow) error {
	err := tx.Model(&connectionRow{}).Where("id = ?", row.ID).Updates(map[string]any{
		"status":             row.Status,
		"scopes":             row.Scopes,
		"access_expires_at":  row.AccessExpiresAt,
		"refresh_expires_at": row.RefreshExpiresAt,
		"updated_at":         row.UpdatedAt,
		"refreshed_at":       row.RefreshedAt,
	}).Error
	return translate("save connection", err)
}

// mergeVehicles adds the vehicles conn did not have and refreshes the attributes of those it had,
// keeping their ids; vehicles it had that the grant does not list stay as they are.
func mergeVehicles(tx *gorm.DB, conn connectionRow, vehicles []domain.Vehicle) ([]domain.Vehicle, error) {
	var had []vehicleRow
	if err := tx.Where("connection_id = ?", conn.ID).Find(&had).Error; err != nil {
		return nil, translate("read vehicles", err)
	}
	bySmartcar := make(map[string]vehicleRow, len(had))
	for _, h := range had {
		bySmartcar[h.SmartcarID] = h
	}
	var added []vehicleRow
	out := make([]domain.Vehicle, 0, len(vehicles))
	for _, v := range vehicles {
		r := vehicleRow{ID: string(v.ID), UserID: conn.UserID, ConnectionID: conn.ID, SmartcarID: v.SmartcarID,
			Make: v.Make, Model: v.Model, Year: v.Year, CreatedAt: dbTime(v.CreatedAt)}
		h, ok := bySmartcar[v.SmartcarID]
		switch {
		case !ok:
			added = append(added, r)
		case h.Make != r.Make || h.Model != r.Model || h.Year != r.Year:
			err := tx.Model(&vehicleRow{}).Where("id = ?", h.ID).
				Updates(map[string]any{"make": r.Make, "model": r.Model, "year": r.Year}).Error
			if err != nil {
				return nil, translate("update vehicle", err)
			}
		}
		if ok {
			r.ID, r.CreatedAt = h.ID, h.CreatedAt
		}
		out = append(out, r.toVehicle())
	}
	if len(added) > 0 {
		if err := tx.Create(&added).Error; err != nil {
			return nil, translate("insert vehicles", err)
		}
	}
	return out, nil
}
