package postgres

import (
	"context"
	"time"

	"github.com/betterkey/backend/domain"
)

// The retention deletes take one bounded batch per statement through the index their predicate
// names (migration 0010), so no statement holds many row locks or runs long, whatever the
// backlog; the janitor repeats them until a batch comes back short. Partial-index predicates are
// literals so that even a generic plan matches the index.
const (
	deleteFinishedCommands = `DELETE FROM commands WHERE id IN (
	SELECT id FROM commands WHERE status NOT IN ('accepted', 'dispatched') AND created_at < ? LIMIT ?)`
	deleteAuditEntries = `DELETE FROM command_audit WHERE id IN (
	SELECT id FROM command_audit WHERE created_at < ? LIMIT ?)`
	deleteFinishedEvents = `DELETE FROM webhook_inbox WHERE (source, event_id) IN (
	SELECT source, event_id FROM webhook_inbox WHERE status <> 'pending' AND source = ? AND received_at < ? LIMIT ?)`
)

// DeleteFinished implements ports.CommandStore.
func (s *Commands) DeleteFinished(ctx context.Context, before time.Time, limit int) (int, error) {
	return s.db.deleteBatch(ctx, "delete finished commands", deleteFinishedCommands, limit, ceilMicro(before), limit)
}

// DeleteAuditBefore implements ports.CommandStore.
func (s *Commands) DeleteAuditBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	return s.db.deleteBatch(ctx, "delete audit entries", deleteAuditEntries, limit, ceilMicro(before), limit)
}

// DeleteFinished implements ports.WebhookInbox over the partial index of final rows.
func (s *WebhookInbox) DeleteFinished(ctx context.Context, source domain.EventSource, before time.Time, limit int) (int, error) {
	return s.db.deleteBatch(ctx, "delete finished inbox events", deleteFinishedEvents, limit, string(source), ceilMicro(before), limit)
}

// deleteBatch runs one bounded delete and reports the rows it removed; a limit of 0 or less
// deletes nothing.
func (db *DB) deleteBatch(ctx context.Context, op, query string, limit int, args ...any) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	res := db.w.WithContext(ctx).Exec(query, args...)
	if res.Error != nil {
		return 0, translate(op, res.Error)
	}
	return int(res.RowsAffected), nil
}
