package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// SealedSecrets is the database ports.SealedSecretStore. Every secret at rest lives in the one
// sealed_secrets table, keyed by the binding its ciphertext is sealed to, so that rotating a key
// finds all of them in one place whatever row they belong to; the stores that own secrets (the
// connection store's token sets) write there in their own transactions.
type SealedSecrets struct {
	db  *DB
	now func() time.Time // stamps updated_at, which only operators read
}

var _ ports.SealedSecretStore = (*SealedSecrets)(nil)

// NewSealedSecrets returns the secrets-at-rest store on db.
func NewSealedSecrets(db *DB) *SealedSecrets { return &SealedSecrets{db: db, now: time.Now} }

// sealedRow is the sealed_secrets table. Only the sealed form of a secret is ever stored.
type sealedRow struct {
	Purpose      string    `gorm:"column:purpose;primaryKey"`
	UserID       string    `gorm:"column:user_id;primaryKey"`
	ConnectionID string    `gorm:"column:connection_id;primaryKey"`
	KeyVersion   int       `gorm:"column:key_version"`
	Ciphertext   string    `gorm:"column:ciphertext"`
	CreatedAt    time.Time `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt    time.Time `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (sealedRow) TableName() string { return "sealed_secrets" }

func (r sealedRow) toDomain() (ports.StoredSecret, error) {
	v, err := domain.ParseSealed(r.Ciphertext)
	if err != nil {
		return ports.StoredSecret{}, fmt.Errorf("decode sealed secret: %w", err)
	}
	b := domain.SecretBinding{Purpose: r.Purpose, UserID: domain.UserID(r.UserID), ConnectionID: r.ConnectionID}
	return ports.StoredSecret{Binding: b, Sealed: v}, nil
}

// KeyVersionCounts implements ports.SealedSecretStore with one GROUP BY per table of secrets at
// rest (sealed_secrets and the signing keys).
func (s *SealedSecrets) KeyVersionCounts(ctx context.Context) (map[int]int, error) {
	out := map[int]int{}
	for _, table := range []any{&sealedRow{}, &signingKeyRow{}} { // every secret at rest
		var rows []struct {
			KeyVersion int `gorm:"column:key_version"`
			N          int `gorm:"column:n"`
		}
		err := s.db.r.WithContext(ctx).Model(table).Select("key_version, count(*) AS n").Group("key_version").Scan(&rows).Error
		if err != nil {
			return nil, translate("count sealed secrets by key version", err)
		}
		for _, r := range rows {
			out[r.KeyVersion] += r.N
		}
	}
	return out, nil
}

// BelowVersion implements ports.SealedSecretStore. The order is the primary key's, compared
// bytewise on both dialects (uuid and COLLATE "C" text on PostgreSQL, BINARY text on SQLite), so
// a page boundary is a plain row-value comparison the index answers. An after binding without a
// user sorts before every row of its purpose, as it would among real bindings.
func (s *SealedSecrets) BelowVersion(ctx context.Context, version int, after domain.SecretBinding, limit int) ([]ports.StoredSecret, error) {
	if limit <= 0 {
		return nil, nil
	}
	q := s.db.r.WithContext(ctx).Where("key_version < ?", version)
	switch {
	case after.UserID == "":
		q = q.Where("purpose >= ?", after.Purpose)
	case !domain.ValidID(string(after.UserID)):
		return nil, fmt.Errorf("list sealed secrets: %w", domain.Invalid("after.user_id", "must be a canonical uuid"))
	default:
		q = q.Where("(purpose, user_id, connection_id) > (?, ?, ?)", after.Purpose, string(after.UserID), after.ConnectionID)
	}
	var rows []sealedRow
	if err := q.Order("purpose, user_id, connection_id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, translate("list sealed secrets", err)
	}
	out := make([]ports.StoredSecret, 0, len(rows))
	for _, r := range rows {
		x, err := r.toDomain()
		if err != nil {
			return nil, fmt.Errorf("list sealed secrets: %w", err)
		}
		out = append(out, x)
	}
	keys, err := s.signingKeysBelow(ctx, version, after)
	if err != nil || len(keys) == 0 {
		return out, err
	}
	// The signing keys are a handful of rows of one purpose: merged into the page in binding
	// order, they page exactly as if they lived in sealed_secrets.
	out = append(out, keys...)
	slices.SortFunc(out, func(a, b ports.StoredSecret) int { return domain.CompareBindings(a.Binding, b.Binding) })
	return out[:min(len(out), limit)], nil
}

// signingKeysBelow returns the signing keys sealed below version whose binding sorts after after.
// A job paging past their purpose asks nothing more of the database.
func (s *SealedSecrets) signingKeysBelow(ctx context.Context, version int, after domain.SecretBinding) ([]ports.StoredSecret, error) {
	if after.Purpose > domain.PurposeSessionSigningKey {
		return nil, nil
	}
	var rows []signingKeyRow
	if err := s.db.r.WithContext(ctx).Where("key_version < ?", version).Find(&rows).Error; err != nil {
		return nil, translate("list signing keys", err)
	}
	var out []ports.StoredSecret
	for _, r := range rows {
		b := domain.SigningKeyBinding(r.KID)
		if after.UserID == "" && b.Purpose < after.Purpose || after.UserID != "" && domain.CompareBindings(b, after) <= 0 {
			continue
		}
		v, err := domain.ParseSealed(r.Ciphertext)
		if err != nil {
			return nil, fmt.Errorf("list signing keys: decode %s: %w", r.KID, err)
		}
		out = append(out, ports.StoredSecret{Binding: b, Sealed: v})
	}
	return out, nil
}

// Replace implements ports.SealedSecretStore with conditional UPDATEs: the database applies a
// swap only while the row still holds old, so a rewrap never overwrites a token set a refresh
// wrote meanwhile, and of concurrent swaps of one value exactly one succeeds. On PostgreSQL the
// whole batch is one statement; SQLite runs one UPDATE per swap in one transaction.
func (s *SealedSecrets) Replace(ctx context.Context, swaps []ports.SecretSwap) ([]bool, error) {
	if err := ports.CheckSwaps(swaps); err != nil {
		return nil, fmt.Errorf("replace sealed secrets: %w", err)
	}
	out := make([]bool, len(swaps))
	idx := make(map[domain.SecretBinding]int, len(swaps))
	rows := make([]swapRow, 0, len(swaps))
	var keySwaps []int
	for i, x := range swaps {
		if x.Binding.Purpose == domain.PurposeSessionSigningKey && x.Binding.UserID == domain.ServiceUserID {
			keySwaps = append(keySwaps, i)
			continue
		}
		// A row is keyed by a uuid user, and nothing holds an empty value: such swaps cannot match.
		if domain.ValidID(string(x.Binding.UserID)) && !x.Old.IsZero() {
			idx[x.Binding] = i
			rows = append(rows, swapRow{Purpose: x.Binding.Purpose, UserID: string(x.Binding.UserID),
				ConnectionID: x.Binding.ConnectionID, Old: x.Old.Ciphertext(),
				New: x.Replacement.Ciphertext(), Version: x.Replacement.KeyVersion()})
		}
	}
	if err := s.replaceSigningKeys(ctx, swaps, keySwaps, out); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return out, nil
	}
	now := dbTime(s.now())
	if s.db.dialect != DialectPostgres {
		err := s.db.transact(ctx, func(tx *gorm.DB) error {
			for _, r := range rows {
				res := tx.Exec(`UPDATE sealed_secrets SET ciphertext = ?, key_version = ?, updated_at = ?
					WHERE purpose = ? AND user_id = ? AND connection_id = ? AND ciphertext = ?`,
					r.New, r.Version, now, r.Purpose, r.UserID, r.ConnectionID, r.Old)
				if res.Error != nil {
					return res.Error
				}
				b := domain.SecretBinding{Purpose: r.Purpose, UserID: domain.UserID(r.UserID), ConnectionID: r.ConnectionID}
				out[idx[b]] = res.RowsAffected == 1
			}
			return nil
		})
		if err != nil {
			return nil, translate("replace sealed secrets", err)
		}
		return out, nil
	}
	batch, err := json.Marshal(rows)
	if err != nil {
		return nil, fmt.Errorf("replace sealed secrets: %w", err)
	}
	var swapped []sealedRow
	err = s.db.w.WithContext(ctx).Raw(replaceSealed, now, string(batch)).Scan(&swapped).Error
	if err != nil {
		return nil, translate("replace sealed secrets", err)
	}
	for _, r := range swapped {
		b := domain.SecretBinding{Purpose: r.Purpose, UserID: domain.UserID(r.UserID), ConnectionID: r.ConnectionID}
		if i, ok := idx[b]; ok {
			out[i] = true
		}
	}
	return out, nil
}

// replaceSigningKeys applies the swaps of signing keys (swaps[i] for i in which), one
// compare-and-swap UPDATE each: there are a handful.
func (s *SealedSecrets) replaceSigningKeys(ctx context.Context, swaps []ports.SecretSwap, which []int, out []bool) error {
	for _, i := range which {
		x := swaps[i]
		if x.Old.IsZero() {
			continue
		}
		res := s.db.w.WithContext(ctx).Exec(`UPDATE session_signing_keys SET ciphertext = ?, key_version = ?
			WHERE kid = ? AND ciphertext = ?`, x.Replacement.Ciphertext(), x.Replacement.KeyVersion(), x.Binding.ConnectionID, x.Old.Ciphertext())
		if res.Error != nil {
			return translate("replace signing keys", res.Error)
		}
		out[i] = res.RowsAffected == 1
	}
	return nil
}

// swapRow is one swap as the batch UPDATE reads it from its JSON parameter.
type swapRow struct {
	Purpose      string `json:"purpose"`
	UserID       string `json:"user_id"`
	ConnectionID string `json:"connection_id"`
	Old          string `json:"old"`
	New          string `json:"new"`
	Version      int    `json:"version"`
}

// replaceSealed swaps a whole batch in one round trip. The batch travels as one jsonb parameter
// (GORM would expand array parameters into lists), and RETURNING names the rows that swapped.
const replaceSealed = `UPDATE sealed_secrets AS s
SET ciphertext = v.new, key_version = v.version, updated_at = ?
FROM jsonb_to_recordset(?::jsonb) AS v(purpose text, user_id uuid, connection_id text, old text, new text, version integer)
WHERE s.purpose = v.purpose AND s.user_id = v.user_id AND s.connection_id = v.connection_id AND s.ciphertext = v.old
RETURNING s.purpose, s.user_id, s.connection_id`

// readSecret returns the secret stored under b inside tx, the zero value when there is none.
func readSecret(tx *gorm.DB, b domain.SecretBinding) (domain.SealedSecret, error) {
	var rows []sealedRow
	err := tx.Select("ciphertext").Where("purpose = ? AND user_id = ? AND connection_id = ?",
		b.Purpose, string(b.UserID), b.ConnectionID).Limit(1).Find(&rows).Error
	if err != nil {
		return domain.SealedSecret{}, translate("read sealed secret", err)
	}
	if len(rows) == 0 {
		return domain.SealedSecret{}, nil
	}
	return parseStoredSecret(&rows[0].Ciphertext)
}

// writeSecret stores v under b inside tx, replacing what was there; a zero v deletes the row,
// because an empty ciphertext must never stand in for a secret.
func writeSecret(tx *gorm.DB, b domain.SecretBinding, v domain.SealedSecret, now time.Time) error {
	if v.IsZero() {
		return deleteSecret(tx, b)
	}
	at := dbTime(now)
	row := sealedRow{Purpose: b.Purpose, UserID: string(b.UserID), ConnectionID: b.ConnectionID,
		KeyVersion: v.KeyVersion(), Ciphertext: v.Ciphertext(), CreatedAt: at, UpdatedAt: at}
	err := tx.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "purpose"}, {Name: "user_id"}, {Name: "connection_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"key_version", "ciphertext", "updated_at"}),
	}).Create(&row).Error
	return translate("write sealed secret", err)
}

// deleteSecret removes the row under b inside tx, if any.
func deleteSecret(tx *gorm.DB, b domain.SecretBinding) error {
	err := tx.Where("purpose = ? AND user_id = ? AND connection_id = ?", b.Purpose, string(b.UserID), b.ConnectionID).
		Delete(&sealedRow{}).Error
	return translate("delete sealed secret", err)
}

// parseStoredSecret reads a nullable ciphertext column: NULL is no secret, anything else must
// be a well-formed sealed value (a malformed one wraps domain.ErrSealedSecretInvalid).
func parseStoredSecret(text *string) (domain.SealedSecret, error) {
	if text == nil {
		return domain.SealedSecret{}, nil
	}
	v, err := domain.ParseSealed(*text)
	if err != nil {
		return domain.SealedSecret{}, fmt.Errorf("decode sealed secret: %w", err)
	}
	return v, nil
}
