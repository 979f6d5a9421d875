package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Users is the database ports.UserStore.
type Users struct{ db *DB }

var _ ports.UserStore = (*Users)(nil)

// NewUsers returns the user store on db.
func NewUsers(db *DB) *Users { return &Users{db: db} }

// userRow is the users table; it stays private so that GORM tags never leak into the domain.
// GORM's automatic timestamps are off: the use cases own every time.
type userRow struct {
	ID             string    `gorm:"column:id;primaryKey"`
	AppleIssuer    string    `gorm:"column:apple_issuer"`
	AppleSubject   string    `gorm:"column:apple_subject"`
	Email          string    `gorm:"column:email"`
	EmailVerified  bool      `gorm:"column:email_verified"`
	IsPrivateEmail bool      `gorm:"column:is_private_email"`
	CreatedAt      time.Time `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt      time.Time `gorm:"column:updated_at;autoUpdateTime:false"`
	// DeletionRequestedAt is written only by MarkDeleting.
	DeletionRequestedAt *time.Time `gorm:"column:deletion_requested_at;->"`
}

func (userRow) TableName() string { return "users" }

func userFromDomain(u domain.User) userRow {
	return userRow{
		ID: string(u.ID), AppleIssuer: u.AppleIssuer, AppleSubject: u.AppleSubject,
		Email: u.Email, EmailVerified: u.EmailVerified, IsPrivateEmail: u.IsPrivateEmail,
		CreatedAt: dbTime(u.CreatedAt), UpdatedAt: dbTime(u.UpdatedAt),
	}
}

func (r userRow) toDomain() domain.User {
	return domain.User{
		ID: domain.UserID(r.ID), AppleIssuer: r.AppleIssuer, AppleSubject: r.AppleSubject,
		Email: r.Email, EmailVerified: r.EmailVerified, IsPrivateEmail: r.IsPrivateEmail,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), DeletionRequestedAt: utcPtr(r.DeletionRequestedAt),
	}
}

// Create implements ports.UserStore. The primary key and the unique (issuer, subject) pair make a
// racing second first-sign-in fail with domain.ErrConflict.
func (s *Users) Create(ctx context.Context, u domain.User) error {
	if !domain.ValidID(string(u.ID)) {
		return errors.New("create user: id is not a canonical uuid")
	}
	row := userFromDomain(u)
	return translate("create user", s.db.w.WithContext(ctx).Create(&row).Error)
}

// Get implements ports.UserStore.
func (s *Users) Get(ctx context.Context, id domain.UserID) (domain.User, error) {
	if !domain.ValidID(string(id)) {
		return domain.User{}, fmt.Errorf("get user: %w", domain.ErrNotFound)
	}
	var row userRow
	if err := s.db.r.WithContext(ctx).Where("id = ?", string(id)).Take(&row).Error; err != nil {
		return domain.User{}, translate("get user", err)
	}
	return row.toDomain(), nil
}

// GetByApple implements ports.UserStore.
func (s *Users) GetByApple(ctx context.Context, issuer, subject string) (domain.User, error) {
	var row userRow
	err := s.db.r.WithContext(ctx).Where("apple_issuer = ? AND apple_subject = ?", issuer, subject).Take(&row).Error
	if err != nil {
		return domain.User{}, translate("get user by apple subject", err)
	}
	return row.toDomain(), nil
}

// Save implements ports.UserStore. Only the profile columns change; the Apple identity and the
// creation time are fixed when the account is created.
func (s *Users) Save(ctx context.Context, u domain.User) error {
	if !domain.ValidID(string(u.ID)) {
		return fmt.Errorf("save user: %w", domain.ErrNotFound)
	}
	row := userFromDomain(u)
	res := s.db.w.WithContext(ctx).Model(&userRow{}).Where("id = ?", row.ID).Updates(map[string]any{
		"email":            row.Email,
		"email_verified":   row.EmailVerified,
		"is_private_email": row.IsPrivateEmail,
		"updated_at":       row.UpdatedAt,
	})
	if res.Error != nil {
		return translate("save user", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("save user: %w", domain.ErrNotFound)
	}
	return nil
}

// MarkDeleting implements ports.UserStore; COALESCE keeps the first start of a retried erasure.
func (s *Users) MarkDeleting(ctx context.Context, id domain.UserID, at time.Time) error {
	if !domain.ValidID(string(id)) {
		return fmt.Errorf("mark user deleting: %w", domain.ErrNotFound)
	}
	res := s.db.w.WithContext(ctx).Exec(`UPDATE users SET deletion_requested_at = COALESCE(deletion_requested_at, ?) WHERE id = ?`,
		dbTime(at), string(id))
	if res.Error != nil {
		return translate("mark user deleting", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("mark user deleting: %w", domain.ErrNotFound)
	}
	return nil
}

// Delete implements ports.UserStore with one DELETE; the schema's ON DELETE CASCADE foreign keys
// remove the account's sessions (and their refresh history), connections, vehicles, connect
// states and sealed secrets in the same statement, so no half-deleted account is ever visible.
func (s *Users) Delete(ctx context.Context, id domain.UserID) error {
	if !domain.ValidID(string(id)) {
		return fmt.Errorf("delete user: %w", domain.ErrNotFound)
	}
	res := s.db.w.WithContext(ctx).Where("id = ?", string(id)).Delete(&userRow{})
	if res.Error != nil {
		return translate("delete user", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("delete user: %w", domain.ErrNotFound)
	}
	return nil
}
