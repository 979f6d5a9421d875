package postgres

import (
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/betterkey/backend/domain"
)

// translate turns the errors GORM reports (with TranslateError on, for both dialects) into the
// domain sentinels the ports promise, wrapped with what was being done. A database that is down
// or overloaded becomes domain.ErrUnavailable (see classify); anything else keeps its cause for
// the logs and stays unclassified, so a transport answers it as an internal error.
func translate(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%s: %w", op, domain.ErrNotFound)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("%s: %w", op, domain.ErrConflict)
	default:
		return fmt.Errorf("%s: %w", op, classify(err))
	}
}

// dbTime is the form every time takes on its way into the database: UTC, truncated to the
// microsecond precision of PostgreSQL's timestamptz, so that what a store returns equals what a
// later read returns. SQLite stores the same instant as sortable UTC text.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// dbTimePtr is dbTime for nullable columns.
func dbTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := dbTime(*t)
	return &v
}

// hashFrom decodes a stored 32-byte token hash; the schema's length checks make a failure a sign
// of corruption, reported as an internal error.
func hashFrom(b []byte) (domain.TokenHash, error) {
	var h domain.TokenHash
	if len(b) != len(h) {
		return h, fmt.Errorf("decode token hash: %d bytes, want %d", len(b), len(h))
	}
	copy(h[:], b)
	return h, nil
}
