package postgres

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Commands is the database ports.CommandStore. Commands live in the commands table, which the
// store only inserts into and moves forward; the in-flight guard is one command_guards row per
// vehicle, a lease taken with INSERT … ON CONFLICT … WHERE the lease expired, in the same
// transaction as the command it admits.
type Commands struct{ db *DB }

var _ ports.CommandStore = (*Commands)(nil)

// NewCommands returns the command store on db.
func NewCommands(db *DB) *Commands { return &Commands{db: db} }

// whereInFlight selects the commands that hold a guard (domain.CommandStatus.InFlight); the
// partial indexes of migration 0003 have the same predicate.
const whereInFlight = "status IN ('accepted', 'dispatched')"

// whereFinished is its complement, the predicate of the retention index of migration 0010; it is
// spelt out rather than negated so that it matches that index literally.
const whereFinished = "status NOT IN ('accepted', 'dispatched')"

// commandRow is the commands table.
type commandRow struct {
	ID                string     `gorm:"column:id;primaryKey"`
	UserID            string     `gorm:"column:user_id"`
	VehicleID         string     `gorm:"column:vehicle_id"`
	ConnectionID      string     `gorm:"column:connection_id"`
	SessionID         *string    `gorm:"column:session_id"`
	Device            string     `gorm:"column:device"`
	Action            string     `gorm:"column:action"`
	Status            string     `gorm:"column:status"`
	IdempotencyKey    *string    `gorm:"column:idempotency_key"`
	ErrorCode         string     `gorm:"column:error_code"`
	UpstreamRequestID string     `gorm:"column:upstream_request_id"`
	RetryAfterSeconds int        `gorm:"column:retry_after_seconds"`
	CreatedAt         time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt         time.Time  `gorm:"column:updated_at;autoUpdateTime:false"`
	DispatchedAt      *time.Time `gorm:"column:dispatched_at"`
	FinishedAt        *time.Time `gorm:"column:finished_at"`
	DeadlineAt        time.Time  `gorm:"column:deadline_at"`
}

func (commandRow) TableName() string { return "commands" }

func commandFromDomain(c domain.Command) commandRow {
	r := commandRow{
		ID: string(c.ID), UserID: string(c.UserID), VehicleID: string(c.VehicleID), ConnectionID: string(c.ConnectionID),
		Device: string(c.Device), Action: string(c.Action), Status: string(c.Status), ErrorCode: c.ErrorCode,
		UpstreamRequestID: c.UpstreamRequestID, CreatedAt: dbTime(c.CreatedAt), UpdatedAt: dbTime(c.UpdatedAt),
		DispatchedAt: dbTimePtr(c.DispatchedAt), FinishedAt: dbTimePtr(c.FinishedAt), DeadlineAt: dbTime(c.Deadline),
	}
	if c.SessionID != "" {
		s := string(c.SessionID)
		r.SessionID = &s
	}
	if c.IdempotencyKey != "" {
		k := c.IdempotencyKey
		r.IdempotencyKey = &k
	}
	if c.RetryAfter > 0 {
		r.RetryAfterSeconds = domain.CeilSeconds(c.RetryAfter)
	}
	return r
}

func (r commandRow) toDomain() domain.Command {
	c := domain.Command{
		ID: domain.CommandID(r.ID), UserID: domain.UserID(r.UserID), VehicleID: domain.VehicleID(r.VehicleID),
		ConnectionID: domain.ConnectionID(r.ConnectionID), Device: domain.Device(r.Device),
		Action: domain.CommandAction(r.Action), Status: domain.CommandStatus(r.Status), ErrorCode: r.ErrorCode,
		UpstreamRequestID: r.UpstreamRequestID, RetryAfter: time.Duration(r.RetryAfterSeconds) * time.Second,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), Deadline: r.DeadlineAt.UTC(),
		DispatchedAt: utcPtr(r.DispatchedAt), FinishedAt: utcPtr(r.FinishedAt),
	}
	if r.SessionID != nil {
		c.SessionID = domain.SessionID(*r.SessionID)
	}
	if r.IdempotencyKey != nil {
		c.IdempotencyKey = *r.IdempotencyKey
	}
	return c
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}

// insertCommand names every column, so the statement is prepared once and reused.
const insertCommand = `INSERT INTO commands (id, user_id, vehicle_id, connection_id, session_id, device, action,
	status, idempotency_key, error_code, upstream_request_id, retry_after_seconds, created_at, updated_at,
	dispatched_at, finished_at, deadline_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func insertCommandRow(tx *gorm.DB, r commandRow) error {
	return tx.Exec(insertCommand, r.ID, r.UserID, r.VehicleID, r.ConnectionID, r.SessionID, r.Device, r.Action,
		r.Status, r.IdempotencyKey, r.ErrorCode, r.UpstreamRequestID, r.RetryAfterSeconds, r.CreatedAt, r.UpdatedAt,
		r.DispatchedAt, r.FinishedAt, r.DeadlineAt).Error
}

// saveCommand writes the mutable columns of r over the row, only while the row still has the
// status from: a compare-and-set, so a status never moves backwards even without a row lock.
// It reports whether the row was written.
func saveCommand(tx *gorm.DB, r commandRow, from domain.CommandStatus) (bool, error) {
	res := tx.Exec(`UPDATE commands SET status = ?, error_code = ?, upstream_request_id = ?, retry_after_seconds = ?,
	updated_at = ?, dispatched_at = ?, finished_at = ? WHERE id = ? AND status = ?`,
		r.Status, r.ErrorCode, r.UpstreamRequestID, r.RetryAfterSeconds, r.UpdatedAt, r.DispatchedAt, r.FinishedAt,
		r.ID, string(from))
	if res.Error != nil {
		return false, translate("save command", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// Get implements ports.CommandStore.
func (s *Commands) Get(ctx context.Context, id domain.CommandID) (domain.Command, error) {
	if !domain.ValidID(string(id)) {
		return domain.Command{}, fmt.Errorf("get command: %w", domain.ErrNotFound)
	}
	var r commandRow
	if err := s.db.r.WithContext(ctx).Where("id = ?", string(id)).Take(&r).Error; err != nil {
		return domain.Command{}, translate("get command", err)
	}
	return r.toDomain(), nil
}

// ByIdempotencyKey implements ports.CommandStore on the unique (user, key) index.
func (s *Commands) ByIdempotencyKey(ctx context.Context, user domain.UserID, key string) (domain.Command, error) {
	if !domain.ValidID(string(user)) || key == "" || domain.CheckIdempotencyKey(key) != nil {
		return domain.Command{}, fmt.Errorf("get command by idempotency key: %w", domain.ErrNotFound)
	}
	c, found, err := byIdempotencyKey(s.db.r.WithContext(ctx), string(user), key)
	if err != nil {
		return domain.Command{}, err
	}
	if !found {
		return domain.Command{}, fmt.Errorf("get command by idempotency key: %w", domain.ErrNotFound)
	}
	return c, nil
}

// History implements ports.CommandStore with keyset paging on the history index: the cursor's
// creation time and id, so a page never repeats or skips a command however many arrive meanwhile.
func (s *Commands) History(ctx context.Context, user domain.UserID, vehicle domain.VehicleID, before domain.CommandID, limit int) ([]domain.Command, error) {
	if !domain.ValidID(string(vehicle)) {
		if before != "" {
			return nil, fmt.Errorf("list commands: cursor: %w", domain.ErrNotFound)
		}
		return nil, nil
	}
	return s.history(ctx, user, vehicle, before, limit)
}

// UserHistory implements ports.CommandStore with the same keyset paging as History, over the
// user's commands of every vehicle. Only the data export reads it, so it has no index of its
// own: the user's rows are found through the rate-limit index and sorted.
func (s *Commands) UserHistory(ctx context.Context, user domain.UserID, before domain.CommandID, limit int) ([]domain.Command, error) {
	return s.history(ctx, user, "", before, limit)
}

// history pages through the user's commands of vehicle, or of every vehicle when it is empty.
func (s *Commands) history(ctx context.Context, user domain.UserID, vehicle domain.VehicleID, before domain.CommandID, limit int) ([]domain.Command, error) {
	if !domain.ValidID(string(user)) || limit <= 0 {
		if before != "" {
			return nil, fmt.Errorf("list commands: cursor: %w", domain.ErrNotFound)
		}
		return nil, nil
	}
	q := s.db.r.WithContext(ctx).Where("user_id = ?", string(user))
	if vehicle != "" {
		q = q.Where("vehicle_id = ?", string(vehicle))
	}
	if before != "" {
		c, err := s.Get(ctx, before)
		if err != nil || c.UserID != user || (vehicle != "" && c.VehicleID != vehicle) {
			return nil, fmt.Errorf("list commands: cursor: %w", domain.ErrNotFound)
		}
		at := dbTime(c.CreatedAt)
		q = q.Where("(created_at < ? OR (created_at = ? AND id < ?))", at, at, string(c.ID))
	}
	var rows []commandRow
	if err := q.Order("created_at DESC, id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, translate("list commands", err)
	}
	out := make([]domain.Command, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.toDomain())
	}
	return out, nil
}
