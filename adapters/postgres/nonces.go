package postgres

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Nonces is the database ports.NonceStore. Nonces live in the database rather than in memory so
// that a nonce issued by one replica can be consumed on another, and consumed only once.
type Nonces struct{ db *DB }

var _ ports.NonceStore = (*Nonces)(nil)

// NewNonces returns the nonce store on db.
func NewNonces(db *DB) *Nonces { return &Nonces{db: db} }

// nonceRow is the nonces table.
type nonceRow struct {
	Hash      []byte    `gorm:"column:hash;primaryKey"`
	ExpiresAt time.Time `gorm:"column:expires_at"`
}

func (nonceRow) TableName() string { return "nonces" }

// Put implements ports.NonceStore.
func (s *Nonces) Put(ctx context.Context, n domain.Nonce) error {
	row := nonceRow{Hash: n.Hash[:], ExpiresAt: dbTime(n.ExpiresAt)}
	return translate("put nonce", s.db.w.WithContext(ctx).Create(&row).Error)
}

// Consume implements ports.NonceStore with a single DELETE … RETURNING: the database deletes a row
// once, so of any number of concurrent consumers exactly one gets it back. An expired nonce is
// deleted too, and reported as not found.
func (s *Nonces) Consume(ctx context.Context, h domain.TokenHash, now time.Time) error {
	var rows []nonceRow
	res := s.db.w.WithContext(ctx).Clauses(clause.Returning{}).Where("hash = ?", h[:]).Delete(&rows)
	if res.Error != nil {
		return translate("consume nonce", res.Error)
	}
	if len(rows) == 0 {
		return fmt.Errorf("consume nonce: %w", domain.ErrNotFound)
	}
	if !now.Before(rows[0].ExpiresAt) {
		return fmt.Errorf("consume nonce: expired: %w", domain.ErrNotFound)
	}
	return nil
}

// DeleteExpired implements ports.NonceStore; a janitor calls it so unused nonces do not pile up.
func (s *Nonces) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	res := s.db.w.WithContext(ctx).Where("expires_at < ?", ceilMicro(now)).Delete(&nonceRow{})
	if res.Error != nil {
		return 0, translate("delete expired nonces", res.Error)
	}
	return int(res.RowsAffected), nil
}

// ceilMicro rounds now up to the microsecond. Stored expiries are whole microseconds, so for them
// "before now" and "before ceilMicro(now)" agree, while truncating now would keep a nonce that
// expired within the last microsecond.
func ceilMicro(now time.Time) time.Time {
	t := dbTime(now)
	if t.Before(now) {
		t = t.Add(time.Microsecond)
	}
	return t
}
