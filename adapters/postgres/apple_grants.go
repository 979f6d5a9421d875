package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// AppleGrants is the database ports.AppleGrantStore. A grant is a row of sealed_secrets under
// the purpose apple.refresh_token with the client id in connection_id, so key reports and rewrap
// cover Apple's refresh tokens like every other secret at rest, and the users cascade removes
// them with the account.
type AppleGrants struct {
	db  *DB
	now func() time.Time
}

var _ ports.AppleGrantStore = (*AppleGrants)(nil)

// NewAppleGrants returns the Apple grant store on db.
func NewAppleGrants(db *DB) *AppleGrants { return &AppleGrants{db: db, now: time.Now} }

// PutAppleGrant implements ports.AppleGrantStore with an upsert; a replaced grant is a new
// authorization, so it takes the new grant's creation time.
func (s *AppleGrants) PutAppleGrant(ctx context.Context, g domain.AppleGrant) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("put apple grant: %w", err)
	}
	if !domain.ValidID(string(g.UserID)) {
		return fmt.Errorf("put apple grant: %w", domain.ErrNotFound)
	}
	b := g.Binding()
	created, updated := dbTime(g.CreatedAt), dbTime(s.now())
	err := s.db.w.WithContext(ctx).Exec(`INSERT INTO sealed_secrets
		(purpose, user_id, connection_id, key_version, ciphertext, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (purpose, user_id, connection_id)
		DO UPDATE SET key_version = excluded.key_version, ciphertext = excluded.ciphertext,
			created_at = excluded.created_at, updated_at = excluded.updated_at`,
		b.Purpose, string(b.UserID), b.ConnectionID, g.RefreshToken.KeyVersion(), g.RefreshToken.Ciphertext(), created, updated).Error
	if errors.Is(err, gorm.ErrForeignKeyViolated) || isForeignKeyViolation(err) {
		return fmt.Errorf("put apple grant: user: %w", domain.ErrNotFound)
	}
	return translate("put apple grant", err)
}

// AppleGrants implements ports.AppleGrantStore.
func (s *AppleGrants) AppleGrants(ctx context.Context, user domain.UserID) ([]domain.AppleGrant, error) {
	if !domain.ValidID(string(user)) {
		return []domain.AppleGrant{}, nil
	}
	var rows []sealedRow
	err := s.db.r.WithContext(ctx).Where("purpose = ? AND user_id = ?", domain.PurposeAppleRefreshToken, string(user)).
		Order("connection_id").Find(&rows).Error
	if err != nil {
		return nil, translate("list apple grants", err)
	}
	out := make([]domain.AppleGrant, 0, len(rows))
	for _, r := range rows {
		v, err := domain.ParseSealed(r.Ciphertext)
		if err != nil {
			return nil, fmt.Errorf("list apple grants: %w", err)
		}
		out = append(out, domain.AppleGrant{UserID: user, ClientID: r.ConnectionID, RefreshToken: v, CreatedAt: r.CreatedAt.UTC()})
	}
	return out, nil
}

// DeleteAppleGrant implements ports.AppleGrantStore as a conditional DELETE.
func (s *AppleGrants) DeleteAppleGrant(ctx context.Context, g domain.AppleGrant) (bool, error) {
	if !domain.ValidID(string(g.UserID)) || g.RefreshToken.IsZero() {
		return false, nil
	}
	b := g.Binding()
	res := s.db.w.WithContext(ctx).Where("purpose = ? AND user_id = ? AND connection_id = ? AND ciphertext = ?",
		b.Purpose, string(b.UserID), b.ConnectionID, g.RefreshToken.Ciphertext()).Delete(&sealedRow{})
	if res.Error != nil {
		return false, translate("delete apple grant", res.Error)
	}
	return res.RowsAffected == 1, nil
}
