package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/betterkey/backend/domain"
)

// unavailableError is a database failure that says nothing about the request: the server is
// down, restarting, refusing, out of connections, too slow, or gave up on a serialization
// conflict. It is domain.ErrUnavailable, so transports answer 503 with Retry-After and the app
// tries again, while the cause stays for the logs.
type unavailableError struct{ cause error }

func (e *unavailableError) Error() string   { return "database unavailable: " + e.cause.Error() }
func (e *unavailableError) Unwrap() []error { return []error{domain.ErrUnavailable, e.cause} }

// classify marks err as unavailable when it is one of the failures above; any other error is
// returned as it is.
func classify(err error) error {
	if err == nil || !unavailable(err) {
		return err
	}
	if _, done := errors.AsType[*unavailableError](err); done {
		return err
	}
	return &unavailableError{cause: err}
}

// unavailableStates are the SQLSTATEs that mean "retry in a moment": connection exceptions (08),
// insufficient resources such as too_many_connections (53), operator intervention such as
// admin_shutdown and cannot_connect_now (57P0x), serialization failure and deadlock (40001,
// 40P01), lock_not_available from lock_timeout (55P03) and query_canceled from
// statement_timeout (57014).
func unavailableState(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "53"), strings.HasPrefix(code, "57P0"):
		return true
	}
	switch code {
	case "40001", "40P01", "55P03", "57014":
		return true
	}
	return false
}

func unavailable(err error) bool {
	if pg, ok := errors.AsType[*pgconn.PgError](err); ok {
		return unavailableState(pg.Code)
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true // refused, reset, timed out: the network between us and the database
	}
	switch {
	case pgconn.Timeout(err),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	// SQLite: another process holds the write lock for longer than the busy timeout.
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "SQLITE_LOCKED")
}

// registerClassifier makes every statement GORM runs, in or out of a transaction, report an
// availability failure as domain.ErrUnavailable; transact covers BEGIN and COMMIT, which GORM runs
// outside its callbacks.
func registerClassifier(g *gorm.DB) error {
	fix := func(db *gorm.DB) {
		if db.Error != nil {
			db.Error = classify(db.Error)
		}
	}
	cb := g.Callback()
	for _, err := range []error{
		cb.Create().After("gorm:create").Register("betterkey:classify_create", fix),
		cb.Query().After("gorm:query").Register("betterkey:classify_query", fix),
		cb.Update().After("gorm:update").Register("betterkey:classify_update", fix),
		cb.Delete().After("gorm:delete").Register("betterkey:classify_delete", fix),
		cb.Row().After("gorm:row").Register("betterkey:classify_row", fix),
		cb.Raw().After("gorm:raw").Register("betterkey:classify_raw", fix),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// transact runs fn in a write transaction on ctx; a failure to begin or commit because the
// database is unavailable is reported as such.
func (db *DB) transact(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return classify(db.w.WithContext(ctx).Transaction(fn))
}
