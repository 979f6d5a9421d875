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

// SigningKeys is the database ports.SigningKeyStore.
type SigningKeys struct{ db *DB }

var _ ports.SigningKeyStore = (*SigningKeys)(nil)

// NewSigningKeys returns the signing-key store on db.
func NewSigningKeys(db *DB) *SigningKeys { return &SigningKeys{db: db} }

// signingKeyRow is the session_signing_keys table.
type signingKeyRow struct {
	KID           string     `gorm:"column:kid;primaryKey"`
	KeyVersion    int        `gorm:"column:key_version"`
	Ciphertext    string     `gorm:"column:ciphertext"`
	SignsFrom     time.Time  `gorm:"column:signs_from"`
	VerifiesUntil *time.Time `gorm:"column:verifies_until"`
	CreatedAt     time.Time  `gorm:"column:created_at;autoCreateTime:false"`
}

func (signingKeyRow) TableName() string { return "session_signing_keys" }

func (r signingKeyRow) toDomain() (domain.SigningKey, error) {
	v, err := domain.ParseSealed(r.Ciphertext)
	if err != nil {
		return domain.SigningKey{}, fmt.Errorf("decode signing key %s: %w", r.KID, err)
	}
	k := domain.SigningKey{ID: r.KID, Sealed: v, SignsFrom: r.SignsFrom.UTC(), CreatedAt: r.CreatedAt.UTC()}
	if r.VerifiesUntil != nil {
		k.VerifiesUntil = r.VerifiesUntil.UTC()
	}
	return k, nil
}

func signingKeyRowOf(k domain.SigningKey) signingKeyRow {
	r := signingKeyRow{KID: k.ID, KeyVersion: k.Sealed.KeyVersion(), Ciphertext: k.Sealed.Ciphertext(),
		SignsFrom: dbTime(k.SignsFrom), CreatedAt: dbTime(k.CreatedAt)}
	if !k.VerifiesUntil.IsZero() {
		t := dbTime(k.VerifiesUntil)
		r.VerifiesUntil = &t
	}
	return r
}

// SigningKeys implements ports.SigningKeyStore.
func (s *SigningKeys) SigningKeys(ctx context.Context) ([]domain.SigningKey, error) {
	return loadSigningKeys(s.db.r.WithContext(ctx))
}

func loadSigningKeys(tx *gorm.DB) ([]domain.SigningKey, error) {
	var rows []signingKeyRow
	if err := tx.Order("signs_from, created_at, kid").Find(&rows).Error; err != nil {
		return nil, translate("list signing keys", err)
	}
	out := make([]domain.SigningKey, 0, len(rows))
	for _, r := range rows {
		k, err := r.toDomain()
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// signingKeysLock serialises rotations across replicas on PostgreSQL; SQLite's single writer
// does it there.
const signingKeysLock = `SELECT pg_advisory_xact_lock(1112228609, hashtext('session_signing_keys'))`

// UpdateSigningKeys implements ports.SigningKeyStore in one transaction. The ciphertext of an
// existing key is left alone: only the rewrap job replaces it, by compare-and-swap.
func (s *SigningKeys) UpdateSigningKeys(ctx context.Context, decide func([]domain.SigningKey) ([]domain.SigningKey, error)) error {
	var decided error
	err := s.db.transact(ctx, func(tx *gorm.DB) error {
		if s.db.dialect == DialectPostgres {
			if err := tx.Exec(signingKeysLock).Error; err != nil {
				return err
			}
		}
		cur, err := loadSigningKeys(tx)
		if err != nil {
			return err
		}
		next, err := decide(cur)
		if err != nil {
			decided = err
			return err
		}
		keep := make([]string, 0, len(next))
		for _, k := range next {
			if k.ID == "" || k.Sealed.IsZero() {
				return fmt.Errorf("update signing keys: %w", domain.Invalid("key", "needs an id and sealed material"))
			}
			keep = append(keep, k.ID)
			row := signingKeyRowOf(k)
			err := tx.Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "kid"}},
				DoUpdates: clause.AssignmentColumns([]string{"signs_from", "verifies_until"}),
			}).Create(&row).Error
			if err != nil {
				return err
			}
		}
		q := tx.Model(&signingKeyRow{})
		if len(keep) > 0 {
			q = q.Where("kid NOT IN ?", keep)
		} else {
			q = q.Where("1 = 1")
		}
		return q.Delete(&signingKeyRow{}).Error
	})
	if decided != nil {
		return decided
	}
	return translate("update signing keys", err)
}
