package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Connections is the database ports.ConnectionStore. A connection's row holds what the refresher
// and the vehicle list need in clear (status, scopes, expiries); its token set lives only in
// sealed_secrets under the connection's TokenBinding, read and written in the same transaction
// as the row, so the two never disagree and nothing of a token reaches another column.
type Connections struct {
	db  *DB
	now func() time.Time // stamps the sealed_secrets rows, which only operators read
}

var _ ports.ConnectionStore = (*Connections)(nil)

// NewConnections returns the connection store on db.
func NewConnections(db *DB) *Connections { return &Connections{db: db, now: time.Now} }

// connectionRow is the connections table. RefreshedAt is NULL for a connection never refreshed
// (the zero time in the domain).
type connectionRow struct {
	ID               string     `gorm:"column:id;primaryKey"`
	UserID           string     `gorm:"column:user_id"`
	SmartcarUserID   string     `gorm:"column:smartcar_user_id"`
	Status           string     `gorm:"column:status"`
	Scopes           string     `gorm:"column:scopes"`
	AccessExpiresAt  time.Time  `gorm:"column:access_expires_at"`
	RefreshExpiresAt time.Time  `gorm:"column:refresh_expires_at"`
	CreatedAt        time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt        time.Time  `gorm:"column:updated_at;autoUpdateTime:false"`
	RefreshedAt      *time.Time `gorm:"column:refreshed_at"`
}

func (connectionRow) TableName() string { return "connections" }

func connectionFromDomain(c domain.Connection) connectionRow {
	r := connectionRow{
		ID: string(c.ID), UserID: string(c.UserID), SmartcarUserID: c.SmartcarUserID,
		Status: string(c.Status), Scopes: strings.Join(c.Scopes, " "),
		AccessExpiresAt: dbTime(c.AccessExpiresAt), RefreshExpiresAt: dbTime(c.RefreshExpiresAt),
		CreatedAt: dbTime(c.CreatedAt), UpdatedAt: dbTime(c.UpdatedAt),
	}
	if !c.RefreshedAt.IsZero() {
		t := dbTime(c.RefreshedAt)
		r.RefreshedAt = &t
	}
	return r
}

// toDomain returns the connection with tokens, which the caller read from sealed_secrets.
func (r connectionRow) toDomain(tokens domain.SealedSecret) domain.Connection {
	c := domain.Connection{
		ID: domain.ConnectionID(r.ID), UserID: domain.UserID(r.UserID), SmartcarUserID: r.SmartcarUserID,
		Status: domain.ConnectionStatus(r.Status), Scopes: splitScopes(r.Scopes), Tokens: tokens,
		AccessExpiresAt: r.AccessExpiresAt.UTC(), RefreshExpiresAt: r.RefreshExpiresAt.UTC(),
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if r.RefreshedAt != nil {
		c.RefreshedAt = r.RefreshedAt.UTC()
	}
	return c
}

// splitScopes reads the space-separated scope column; no scopes is nil.
func splitScopes(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

// selectConnection reads connections with their token sets in one statement, so the row and the
// sealed set come from one snapshot.
const selectConnection = `SELECT c.id, c.user_id, c.smartcar_user_id, c.status, c.scopes, c.access_expires_at,
	c.refresh_expires_at, c.created_at, c.updated_at, c.refreshed_at, s.ciphertext
FROM connections c
LEFT JOIN sealed_secrets s ON s.purpose = ? AND s.user_id = c.user_id AND s.connection_id = CAST(c.id AS TEXT)
WHERE `

// Get implements ports.ConnectionStore.
func (s *Connections) Get(ctx context.Context, id domain.ConnectionID) (domain.Connection, error) {
	if !domain.ValidID(string(id)) {
		return domain.Connection{}, fmt.Errorf("get connection: %w", domain.ErrNotFound)
	}
	return s.readOne(ctx, "get connection", "c.id = ?", string(id))
}

// BySmartcarUser implements ports.ConnectionStore.
func (s *Connections) BySmartcarUser(ctx context.Context, user domain.UserID, smartcarUserID string) (domain.Connection, error) {
	if !domain.ValidID(string(user)) {
		return domain.Connection{}, fmt.Errorf("get connection by smartcar user: %w", domain.ErrNotFound)
	}
	return s.readOne(ctx, "get connection by smartcar user", "c.user_id = ? AND c.smartcar_user_id = ?", string(user), smartcarUserID)
}

// readOne runs selectConnection with where and returns the one connection it finds.
func (s *Connections) readOne(ctx context.Context, op, where string, args ...any) (domain.Connection, error) {
	rows, err := s.db.r.WithContext(ctx).Raw(selectConnection+where, append([]any{domain.PurposeSmartcarTokens}, args...)...).Rows()
	if err != nil {
		return domain.Connection{}, translate(op, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return domain.Connection{}, translate(op, err)
		}
		return domain.Connection{}, fmt.Errorf("%s: %w", op, domain.ErrNotFound)
	}
	var (
		r          connectionRow
		ciphertext *string
	)
	err = rows.Scan(&r.ID, &r.UserID, &r.SmartcarUserID, &r.Status, &r.Scopes, &r.AccessExpiresAt,
		&r.RefreshExpiresAt, &r.CreatedAt, &r.UpdatedAt, &r.RefreshedAt, &ciphertext)
	if err != nil {
		return domain.Connection{}, translate(op, err)
	}
	tokens, err := parseStoredSecret(ciphertext)
	if err != nil {
		return domain.Connection{}, fmt.Errorf("%s: %w", op, err)
	}
	return r.toDomain(tokens), nil
}

// DueForRefresh implements ports.ConnectionStore over the (status, refresh_expires_at, id) index;
// ties on the expiry fall back to the id so the order is the same in every store.
func (s *Connections) DueForRefresh(ctx context.Context, before time.Time, limit int) ([]domain.ConnectionID, error) {
	if limit <= 0 {
		return nil, nil
	}
	var ids []string
	err := s.db.r.WithContext(ctx).Model(&connectionRow{}).
		Where("status = ? AND refresh_expires_at < ?", string(domain.ConnectionActive), ceilMicro(before)).
		Order("refresh_expires_at, id").Limit(limit).Pluck("id", &ids).Error
	if err != nil {
		return nil, translate("list connections due for refresh", err)
	}
	out := make([]domain.ConnectionID, len(ids))
	for i, id := range ids {
		out[i] = domain.ConnectionID(id)
	}
	return out, nil
}

// lockConnection reads a connection row inside tx with the row locked: SELECT … FOR UPDATE on
// PostgreSQL, which is the cross-replica lock a token refresh runs under. SQLite has no row locks
// (GORM drops the clause); there the transaction already holds the database's single write
// lock, taken by BEGIN IMMEDIATE on the one writer connection. The query names the row by where.
func lockConnection(tx *gorm.DB, where string, args ...any) ([]connectionRow, error) {
	var rows []connectionRow
	err := tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).Where(where, args...).Limit(1).Find(&rows).Error
	if err != nil {
		return nil, translate("lock connection", err)
	}
	return rows, nil
}
