package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Sessions is the database ports.SessionStore. A session's current refresh hash lives in its row;
// every hash it rotated away from moves to session_refresh_history, so a replayed token still
// leads to its session and the use case can revoke it.
type Sessions struct{ db *DB }

var _ ports.SessionStore = (*Sessions)(nil)

// NewSessions returns the session store on db.
func NewSessions(db *DB) *Sessions { return &Sessions{db: db} }

// sessionRow is the sessions table.
type sessionRow struct {
	ID                string     `gorm:"column:id;primaryKey"`
	UserID            string     `gorm:"column:user_id"`
	InstallID         string     `gorm:"column:install_id"`
	Device            string     `gorm:"column:device"`
	DeviceName        string     `gorm:"column:device_name"`
	RefreshHash       []byte     `gorm:"column:refresh_hash"`
	CreatedAt         time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	LastUsedAt        time.Time  `gorm:"column:last_used_at"`
	IdleExpiresAt     time.Time  `gorm:"column:idle_expires_at"`
	AbsoluteExpiresAt time.Time  `gorm:"column:absolute_expires_at"`
	RevokedAt         *time.Time `gorm:"column:revoked_at"`
	RevokeReason      string     `gorm:"column:revoke_reason"`
}

func (sessionRow) TableName() string { return "sessions" }

// historyRow is one refresh hash a session rotated away from.
type historyRow struct {
	RefreshHash []byte    `gorm:"column:refresh_hash;primaryKey"`
	SessionID   string    `gorm:"column:session_id"`
	RotatedAt   time.Time `gorm:"column:rotated_at"`
}

func (historyRow) TableName() string { return "session_refresh_history" }

func sessionFromDomain(x domain.Session) sessionRow {
	return sessionRow{
		ID: string(x.ID), UserID: string(x.UserID), InstallID: x.InstallID, Device: string(x.Device),
		DeviceName: x.DeviceName, RefreshHash: x.RefreshHash[:],
		CreatedAt: dbTime(x.CreatedAt), LastUsedAt: dbTime(x.LastUsedAt),
		IdleExpiresAt: dbTime(x.IdleExpiresAt), AbsoluteExpiresAt: dbTime(x.AbsoluteExpiresAt),
		RevokedAt: dbTimePtr(x.RevokedAt), RevokeReason: x.RevokeReason,
	}
}

func (r sessionRow) toDomain() (domain.Session, error) {
	h, err := hashFrom(r.RefreshHash)
	if err != nil {
		return domain.Session{}, fmt.Errorf("decode session: %w", err)
	}
	var revoked *time.Time
	if r.RevokedAt != nil {
		t := r.RevokedAt.UTC()
		revoked = &t
	}
	return domain.Session{
		ID: domain.SessionID(r.ID), UserID: domain.UserID(r.UserID), InstallID: r.InstallID,
		Device: domain.Device(r.Device), DeviceName: r.DeviceName, RefreshHash: h,
		CreatedAt: r.CreatedAt.UTC(), LastUsedAt: r.LastUsedAt.UTC(),
		IdleExpiresAt: r.IdleExpiresAt.UTC(), AbsoluteExpiresAt: r.AbsoluteExpiresAt.UTC(),
		RevokedAt: revoked, RevokeReason: r.RevokeReason,
	}, nil
}

// insertSession inserts unless the refresh hash is in the history, so that a hash never leads to
// two sessions; both dialects infer the parameter types from the target columns.
const insertSession = `INSERT INTO sessions (id, user_id, install_id, device, device_name, refresh_hash,
	created_at, last_used_at, idle_expires_at, absolute_expires_at, revoked_at, revoke_reason)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
WHERE NOT EXISTS (SELECT 1 FROM session_refresh_history WHERE refresh_hash = ?)`

// Create implements ports.SessionStore in one statement: the primary key and the unique current
// hash catch the usual duplicates, and the NOT EXISTS guard catches a hash rotated away earlier.
func (s *Sessions) Create(ctx context.Context, x domain.Session) error {
	if !domain.ValidID(string(x.ID)) || !domain.ValidID(string(x.UserID)) {
		return errors.New("create session: id or user id is not a canonical uuid")
	}
	r := sessionFromDomain(x)
	res := s.db.w.WithContext(ctx).Exec(insertSession, r.ID, r.UserID, r.InstallID, r.Device, r.DeviceName,
		r.RefreshHash, r.CreatedAt, r.LastUsedAt, r.IdleExpiresAt, r.AbsoluteExpiresAt, r.RevokedAt,
		r.RevokeReason, r.RefreshHash)
	if res.Error != nil {
		return translate("create session", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("create session: refresh hash was used before: %w", domain.ErrConflict)
	}
	return nil
}

// Get implements ports.SessionStore.
func (s *Sessions) Get(ctx context.Context, id domain.SessionID) (domain.Session, error) {
	if !domain.ValidID(string(id)) {
		return domain.Session{}, fmt.Errorf("get session: %w", domain.ErrNotFound)
	}
	var r sessionRow
	if err := s.db.r.WithContext(ctx).Where("id = ?", string(id)).Take(&r).Error; err != nil {
		return domain.Session{}, translate("get session", err)
	}
	x, err := r.toDomain()
	if err != nil {
		return domain.Session{}, fmt.Errorf("get session: %w", err)
	}
	return x, nil
}

// ListByUser implements ports.SessionStore; ties on the creation time fall back to the id so the
// order is the same in every store.
func (s *Sessions) ListByUser(ctx context.Context, user domain.UserID) ([]domain.Session, error) {
	if !domain.ValidID(string(user)) {
		return nil, nil
	}
	var rows []sessionRow
	err := s.db.r.WithContext(ctx).Where("user_id = ?", string(user)).Order("created_at DESC, id DESC").Find(&rows).Error
	if err != nil {
		return nil, translate("list sessions", err)
	}
	return sessionsFromRows(rows, "list sessions")
}

func sessionsFromRows(rows []sessionRow, op string) ([]domain.Session, error) {
	out := make([]domain.Session, 0, len(rows))
	for _, r := range rows {
		x, err := r.toDomain()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, x)
	}
	return out, nil
}

// ListLive implements ports.SessionStore over the partial index of unrevoked sessions; the
// expiry is a filter on those few rows. Idle expiry never passes the absolute one
// (domain.Session.Rotate), but both are checked, as Usable does.
func (s *Sessions) ListLive(ctx context.Context, user domain.UserID, now time.Time, limit int) ([]domain.Session, error) {
	if !domain.ValidID(string(user)) || limit <= 0 {
		return nil, nil
	}
	now = dbTime(now)
	var rows []sessionRow
	err := s.db.r.WithContext(ctx).
		Where("user_id = ? AND revoked_at IS NULL AND idle_expires_at > ? AND absolute_expires_at > ?", string(user), now, now).
		Order("created_at DESC, id DESC").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, translate("list live sessions", err)
	}
	return sessionsFromRows(rows, "list live sessions")
}

// findByRefresh looks at the current hashes and the rotated ones in one round trip; a hash
// belongs to at most one session, so at most one row comes back.
const findByRefresh = `SELECT id FROM sessions WHERE refresh_hash = ?
UNION ALL
SELECT session_id FROM session_refresh_history WHERE refresh_hash = ?
LIMIT 1`

// FindByRefresh implements ports.SessionStore.
func (s *Sessions) FindByRefresh(ctx context.Context, h domain.TokenHash) (domain.SessionID, error) {
	var ids []string
	if err := s.db.r.WithContext(ctx).Raw(findByRefresh, h[:], h[:]).Scan(&ids).Error; err != nil {
		return "", translate("find session by refresh token", err)
	}
	if len(ids) == 0 {
		return "", fmt.Errorf("find session by refresh token: %w", domain.ErrNotFound)
	}
	return domain.SessionID(ids[0]), nil
}

// RevokeAllForUser implements ports.SessionStore with one UPDATE, so a session created or revoked
// concurrently is either counted once or not at all.
func (s *Sessions) RevokeAllForUser(ctx context.Context, user domain.UserID, now time.Time, reason string) (int, error) {
	if !domain.ValidID(string(user)) {
		return 0, nil
	}
	res := s.db.w.WithContext(ctx).Model(&sessionRow{}).
		Where("user_id = ? AND revoked_at IS NULL", string(user)).
		Updates(map[string]any{"revoked_at": dbTime(now), "revoke_reason": reason})
	if res.Error != nil {
		return 0, translate("revoke sessions", res.Error)
	}
	return int(res.RowsAffected), nil
}

// DeleteEnded implements ports.SessionStore: revoked sessions first, then the remainder of the
// batch from the expired ones, each statement short.
func (s *Sessions) DeleteEnded(ctx context.Context, before time.Time, limit int) (int, error) {
	before = ceilMicro(before)
	total := 0
	// Their refresh history goes with them (ON DELETE CASCADE).
	for _, p := range []purge{purgeRevokedSessions, purgeExpiredSessions} {
		n, err := s.db.deleteBatch(ctx, "delete ended sessions", p, limit-total, before)
		if total += n; err != nil || total >= limit {
			return total, err
		}
	}
	return total, nil
}

// DeleteRotatedBefore implements ports.SessionStore over the rotated_at index.
func (s *Sessions) DeleteRotatedBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	return s.db.deleteBatch(ctx, "delete rotated refresh hashes", purgeRotatedHashes, limit, ceilMicro(before))
}

// revokeBatch bounds the sessions one statement of RevokeAllCreatedBefore revokes.
const revokeBatch = 1000

// RevokeAllCreatedBefore implements ports.SessionStore.
func (s *Sessions) RevokeAllCreatedBefore(ctx context.Context, before, now time.Time, reason string) (int, error) {
	total := 0
	for {
		res := s.db.w.WithContext(ctx).Exec(`UPDATE sessions SET revoked_at = ?, revoke_reason = ?
			WHERE id IN (SELECT id FROM sessions WHERE revoked_at IS NULL AND created_at < ? LIMIT ?)`,
			dbTime(now), reason, dbTime(before), revokeBatch)
		if res.Error != nil {
			return total, translate("revoke every session", res.Error)
		}
		total += int(res.RowsAffected)
		if res.RowsAffected < revokeBatch {
			return total, nil
		}
	}
}

// lockSession reads the session inside tx with its row locked: SELECT … FOR UPDATE on PostgreSQL.
// SQLite has no row locks (GORM drops the clause); there the transaction already holds the
// database's single write lock, taken by BEGIN IMMEDIATE on the one writer connection.
func lockSession(tx *gorm.DB, id domain.SessionID) (sessionRow, error) {
	var r sessionRow
	err := tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).Where("id = ?", string(id)).Take(&r).Error
	return r, err
}
