package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/betterkey/backend/domain"
)

// purge is one retention delete: the rows of table that match where, oldest by order first.
type purge struct{ table, where, order string }

// The retention deletes. Partial-index predicates are literals so that even a generic plan
// matches the index (migration 0010).
var (
	purgeRevokedSessions  = purge{"sessions", "revoked_at IS NOT NULL AND revoked_at < ?", "revoked_at"}
	purgeExpiredSessions  = purge{"sessions", "revoked_at IS NULL AND idle_expires_at < ?", "idle_expires_at"}
	purgeRotatedHashes    = purge{"session_refresh_history", "rotated_at < ?", "rotated_at"}
	purgeFinishedCommands = purge{"commands", whereFinished + " AND created_at < ?", "created_at"}
	purgeAuditEntries     = purge{"command_audit", "created_at < ?", "created_at"}
	purgeFinishedEvents   = purge{"webhook_inbox", "status <> 'pending' AND source = ? AND received_at < ?", "received_at"}
)

// sql is p as one bounded statement: the batch's rows are found through p's index, oldest first,
// and then deleted by their physical address (ctid on PostgreSQL, rowid on SQLite). So a batch
// costs its own rows whatever the table's size: no statement holds many row locks or runs long,
// and a backlog of years goes as a day's rows do. (Without the ORDER BY a backlog where most rows
// qualify plans a sequential scan, and IN (subquery) plans a join against the whole table.)
func (p purge) sql(d Dialect) string {
	if d == DialectPostgres {
		return fmt.Sprintf("DELETE FROM %[1]s WHERE ctid = ANY(ARRAY(SELECT ctid FROM %[1]s WHERE %[2]s ORDER BY %[3]s LIMIT ?))",
			p.table, p.where, p.order)
	}
	return fmt.Sprintf("DELETE FROM %[1]s WHERE rowid IN (SELECT rowid FROM %[1]s WHERE %[2]s ORDER BY %[3]s LIMIT ?)",
		p.table, p.where, p.order)
}

// DeleteFinished implements ports.CommandStore.
func (s *Commands) DeleteFinished(ctx context.Context, before time.Time, limit int) (int, error) {
	return s.db.deleteBatch(ctx, "delete finished commands", purgeFinishedCommands, limit, ceilMicro(before))
}

// DeleteAuditBefore implements ports.CommandStore.
func (s *Commands) DeleteAuditBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	return s.db.deleteBatch(ctx, "delete audit entries", purgeAuditEntries, limit, ceilMicro(before))
}

// DeleteFinished implements ports.WebhookInbox over the partial index of final rows.
func (s *WebhookInbox) DeleteFinished(ctx context.Context, source domain.EventSource, before time.Time, limit int) (int, error) {
	return s.db.deleteBatch(ctx, "delete finished inbox events", purgeFinishedEvents, limit, string(source), ceilMicro(before))
}

// deleteBatch runs one batch of p, args binding its where, and reports the rows it removed; a
// limit of 0 or less deletes nothing.
func (db *DB) deleteBatch(ctx context.Context, op string, p purge, limit int, args ...any) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	res := db.w.WithContext(ctx).Exec(p.sql(db.dialect), append(args, limit)...)
	if res.Error != nil {
		return 0, translate(op, res.Error)
	}
	return int(res.RowsAffected), nil
}
