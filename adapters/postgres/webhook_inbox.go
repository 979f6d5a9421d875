package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// WebhookInbox is the database ports.WebhookInbox. The primary key (source, event_id) is the
// deduplication: an insert that finds the key does nothing, whichever replica got the delivery.
// Workers claim with one UPDATE whose subquery takes the due rows FOR UPDATE SKIP LOCKED on
// PostgreSQL, so concurrent workers split the backlog instead of queueing on each other's rows;
// on SQLite the single writer connection serialises claims anyway. Every statement is raw SQL:
// ingest is the hot path and needs no reflection.
type WebhookInbox struct{ db *DB }

var _ ports.WebhookInbox = (*WebhookInbox)(nil)

// NewWebhookInbox returns the inbox on db.
func NewWebhookInbox(db *DB) *WebhookInbox { return &WebhookInbox{db: db} }

// inboxColumns is the column list every read returns, in scanInboxEvent's order.
const inboxColumns = `source, event_id, event_type, payload, status, attempts, outcome, last_error,
	received_at, available_at, finished_at`

const insertInboxEvent = `INSERT INTO webhook_inbox (` + inboxColumns + `)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source, event_id) DO NOTHING`

// Add implements ports.WebhookInbox in one statement.
func (s *WebhookInbox) Add(ctx context.Context, e domain.InboxEvent) (bool, error) {
	if err := e.Validate(); err != nil {
		return false, fmt.Errorf("add inbox event: %w", err)
	}
	var finished *time.Time
	if !e.FinishedAt.IsZero() {
		t := dbTime(e.FinishedAt)
		finished = &t
	}
	res := s.db.w.WithContext(ctx).Exec(insertInboxEvent, string(e.Source), e.ID, e.Type, e.Payload, string(e.Status),
		e.Attempts, e.Outcome, e.LastError, dbTime(e.ReceivedAt), dbTime(e.AvailableAt), finished)
	if res.Error != nil {
		return false, translate("add inbox event", res.Error)
	}
	return res.RowsAffected > 0, nil
}

// claimDue leases the due rows in one statement. The {{lock}} placeholder is FOR UPDATE SKIP
// LOCKED on PostgreSQL: a row another worker is claiming right now is skipped rather than waited
// for, and a row whose lease another worker just took no longer matches when it is re-checked.
const claimDue = `UPDATE webhook_inbox SET available_at = ?, attempts = attempts + 1
WHERE (source, event_id) IN (
	SELECT source, event_id FROM webhook_inbox
	WHERE status = 'pending' AND available_at <= ?
	ORDER BY available_at, received_at, source, event_id
	LIMIT ?%s)
RETURNING ` + inboxColumns

// Claim implements ports.WebhookInbox.
func (s *WebhookInbox) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.InboxEvent, error) {
	if limit <= 0 {
		return nil, nil
	}
	lock := ""
	if s.db.dialect == DialectPostgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	now = dbTime(now)
	rows, err := s.db.w.WithContext(ctx).Raw(fmt.Sprintf(claimDue, lock), now.Add(lease), now, limit).Rows()
	if err != nil {
		return nil, translate("claim inbox events", err)
	}
	out, err := scanInboxEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("claim inbox events: %w", err)
	}
	// RETURNING gives no order; hand the events out in the order they were due.
	slices.SortFunc(out, func(a, b domain.InboxEvent) int {
		return cmp.Or(a.ReceivedAt.Compare(b.ReceivedAt), cmp.Compare(a.Source, b.Source), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Finish implements ports.WebhookInbox; only a pending row changes, so the first final state wins.
func (s *WebhookInbox) Finish(ctx context.Context, source domain.EventSource, id string, status domain.InboxStatus, outcome string, spent bool, now time.Time) error {
	if status != domain.InboxProcessed && status != domain.InboxFailed {
		return fmt.Errorf("finish inbox event: %w", domain.Invalid("status", "must be processed or failed"))
	}
	// A spent event's body has done its work: the row keeps only its key, for deduplication,
	// which makes the dedupe window a few hundred bytes per event instead of the whole delivery.
	q, args := `UPDATE webhook_inbox SET status = ?, outcome = ?, finished_at = ?`, []any{string(status), outcome, dbTime(now)}
	if status == domain.InboxProcessed && spent {
		q, args = q+`, payload = ?`, append(args, []byte{})
	}
	res := s.db.w.WithContext(ctx).Exec(q+` WHERE source = ? AND event_id = ? AND status = 'pending'`, append(args, string(source), id)...)
	return s.changedOrExists(ctx, "finish inbox event", res.Error, res.RowsAffected, source, id)
}

// Release implements ports.WebhookInbox.
func (s *WebhookInbox) Release(ctx context.Context, source domain.EventSource, id string, at time.Time, lastError string) error {
	res := s.db.w.WithContext(ctx).Exec(`UPDATE webhook_inbox SET available_at = ?, last_error = ?
WHERE source = ? AND event_id = ? AND status = 'pending'`, dbTime(at), lastError, string(source), id)
	return s.changedOrExists(ctx, "release inbox event", res.Error, res.RowsAffected, source, id)
}

// changedOrExists finishes a conditional update: nothing changed is fine for a final row and
// domain.ErrNotFound for a missing one.
func (s *WebhookInbox) changedOrExists(ctx context.Context, op string, err error, affected int64, source domain.EventSource, id string) error {
	if err != nil {
		return translate(op, err)
	}
	if affected > 0 {
		return nil
	}
	if _, err := s.Get(ctx, source, id); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Get implements ports.WebhookInbox.
func (s *WebhookInbox) Get(ctx context.Context, source domain.EventSource, id string) (domain.InboxEvent, error) {
	rows, err := s.db.r.WithContext(ctx).Raw(`SELECT `+inboxColumns+` FROM webhook_inbox WHERE source = ? AND event_id = ?`,
		string(source), id).Rows()
	if err != nil {
		return domain.InboxEvent{}, translate("get inbox event", err)
	}
	out, err := scanInboxEvents(rows)
	if err != nil {
		return domain.InboxEvent{}, fmt.Errorf("get inbox event: %w", err)
	}
	if len(out) == 0 {
		return domain.InboxEvent{}, fmt.Errorf("get inbox event: %w", domain.ErrNotFound)
	}
	return out[0], nil
}

// scanInboxEvents reads rows of inboxColumns and closes them.
func scanInboxEvents(rows *sql.Rows) ([]domain.InboxEvent, error) {
	defer rows.Close()
	var out []domain.InboxEvent
	for rows.Next() {
		var (
			e                             domain.InboxEvent
			source, status                string
			received, available, finished flexTime
		)
		if err := rows.Scan(&source, &e.ID, &e.Type, &e.Payload, &status, &e.Attempts, &e.Outcome, &e.LastError,
			&received, &available, &finished); err != nil {
			return nil, translate("scan inbox event", err)
		}
		e.Source, e.Status = domain.EventSource(source), domain.InboxStatus(status)
		e.ReceivedAt, e.AvailableAt, e.FinishedAt = received.t, available.t, finished.t
		if e.Payload == nil {
			e.Payload = []byte{}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, translate("scan inbox event", err)
	}
	return out, nil
}

// flexTime scans a timestamp column as UTC whatever form the driver hands it in: a time from
// pgx, and from SQLite either a time or, where the driver cannot see the column's declared type
// (an UPDATE … RETURNING), the stored text. NULL reads as the zero time.
type flexTime struct{ t time.Time }

// sqliteTimeLayouts are the text forms the SQLite driver writes times in.
var sqliteTimeLayouts = [...]string{"2006-01-02 15:04:05.999999999-07:00", time.RFC3339Nano, "2006-01-02 15:04:05.999999999"}

// Scan implements sql.Scanner.
func (f *flexTime) Scan(v any) error {
	var text string
	switch x := v.(type) {
	case nil:
		f.t = time.Time{}
		return nil
	case time.Time:
		f.t = x.UTC()
		return nil
	case string:
		text = x
	case []byte:
		text = string(x)
	default:
		return fmt.Errorf("scan timestamp: unsupported type %T", v)
	}
	for _, layout := range sqliteTimeLayouts {
		if t, err := time.Parse(layout, text); err == nil {
			f.t = t.UTC()
			return nil
		}
	}
	return fmt.Errorf("scan timestamp: unrecognised text of %d bytes", len(text))
}
