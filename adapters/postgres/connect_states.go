package postgres

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// ConnectStates is the database ports.ConnectStateStore. Pending Connect flows and the links
// their callbacks leave live in the database so that the callback and the app's confirmation may
// land on any replica, and be accepted only once.
type ConnectStates struct{ db *DB }

var _ ports.ConnectStateStore = (*ConnectStates)(nil)

// NewConnectStates returns the Connect state store on db.
func NewConnectStates(db *DB) *ConnectStates { return &ConnectStates{db: db} }

// connectStateRow is the connect_states table; the state value itself is never stored, only its
// SHA-256.
type connectStateRow struct {
	Hash      []byte    `gorm:"column:hash;primaryKey"`
	UserID    string    `gorm:"column:user_id"`
	ExpiresAt time.Time `gorm:"column:expires_at"`
}

func (connectStateRow) TableName() string { return "connect_states" }

// pendingLinkRow is the pending_links table; the link token itself is never stored, only its
// SHA-256, and the authorization code only sealed.
type pendingLinkRow struct {
	Hash       []byte    `gorm:"column:hash;primaryKey"`
	UserID     string    `gorm:"column:user_id"`
	SealedCode string    `gorm:"column:sealed_code"`
	ExpiresAt  time.Time `gorm:"column:expires_at"`
}

func (pendingLinkRow) TableName() string { return "pending_links" }

// Put implements ports.ConnectStateStore.
func (s *ConnectStates) Put(ctx context.Context, st domain.ConnectState) error {
	if !domain.ValidID(string(st.UserID)) {
		return fmt.Errorf("put connect state: %w", domain.Invalid("user_id", "must be a canonical uuid"))
	}
	row := connectStateRow{Hash: st.Hash[:], UserID: string(st.UserID), ExpiresAt: dbTime(st.ExpiresAt)}
	return translate("put connect state", s.db.w.WithContext(ctx).Create(&row).Error)
}

// Consume implements ports.ConnectStateStore with a single DELETE … RETURNING: the database
// deletes a row once, so of any number of concurrent callbacks exactly one gets the state back.
// An expired state is deleted too, and reported as not found.
func (s *ConnectStates) Consume(ctx context.Context, h domain.TokenHash, now time.Time) (domain.ConnectState, error) {
	var rows []connectStateRow
	res := s.db.w.WithContext(ctx).Clauses(clause.Returning{}).Where("hash = ?", h[:]).Delete(&rows)
	if res.Error != nil {
		return domain.ConnectState{}, translate("consume connect state", res.Error)
	}
	if len(rows) == 0 {
		return domain.ConnectState{}, fmt.Errorf("consume connect state: %w", domain.ErrNotFound)
	}
	if !now.Before(rows[0].ExpiresAt) {
		return domain.ConnectState{}, fmt.Errorf("consume connect state: expired: %w", domain.ErrNotFound)
	}
	return domain.ConnectState{Hash: h, UserID: domain.UserID(rows[0].UserID), ExpiresAt: rows[0].ExpiresAt.UTC()}, nil
}

// PutPendingLink implements ports.ConnectStateStore.
func (s *ConnectStates) PutPendingLink(ctx context.Context, l domain.PendingLink) error {
	if !domain.ValidID(string(l.UserID)) {
		return fmt.Errorf("put pending link: %w", domain.Invalid("user_id", "must be a canonical uuid"))
	}
	if l.Code.IsZero() {
		return fmt.Errorf("put pending link: %w", domain.Invalid("code", "must not be empty"))
	}
	row := pendingLinkRow{Hash: l.Hash[:], UserID: string(l.UserID), SealedCode: l.Code.Ciphertext(), ExpiresAt: dbTime(l.ExpiresAt)}
	return translate("put pending link", s.db.w.WithContext(ctx).Create(&row).Error)
}

// ConsumePendingLink implements ports.ConnectStateStore with a single DELETE … RETURNING, as
// Consume does: of any number of concurrent confirmations exactly one gets the link back.
func (s *ConnectStates) ConsumePendingLink(ctx context.Context, h domain.TokenHash, now time.Time) (domain.PendingLink, error) {
	var rows []pendingLinkRow
	res := s.db.w.WithContext(ctx).Clauses(clause.Returning{}).Where("hash = ?", h[:]).Delete(&rows)
	if res.Error != nil {
		return domain.PendingLink{}, translate("consume pending link", res.Error)
	}
	if len(rows) == 0 {
		return domain.PendingLink{}, fmt.Errorf("consume pending link: %w", domain.ErrNotFound)
	}
	if !now.Before(rows[0].ExpiresAt) {
		return domain.PendingLink{}, fmt.Errorf("consume pending link: expired: %w", domain.ErrNotFound)
	}
	code, err := domain.ParseSealed(rows[0].SealedCode)
	if err != nil {
		return domain.PendingLink{}, fmt.Errorf("consume pending link: %w", err)
	}
	return domain.PendingLink{Hash: h, UserID: domain.UserID(rows[0].UserID), Code: code, ExpiresAt: rows[0].ExpiresAt.UTC()}, nil
}

// DeleteExpired implements ports.ConnectStateStore; a janitor calls it so abandoned flows and
// unconfirmed links do not pile up.
func (s *ConnectStates) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	cut := ceilMicro(now)
	res := s.db.w.WithContext(ctx).Where("expires_at < ?", cut).Delete(&connectStateRow{})
	if res.Error != nil {
		return 0, translate("delete expired connect states", res.Error)
	}
	links := s.db.w.WithContext(ctx).Where("expires_at < ?", cut).Delete(&pendingLinkRow{})
	if links.Error != nil {
		return 0, translate("delete expired pending links", links.Error)
	}
	return int(res.RowsAffected + links.RowsAffected), nil
}
