package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/betterkey/backend/domain"
)

func TestClassifyMarksOnlyAvailabilityFailures(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("query: %w", &pgconn.PgError{Code: code, Message: "x"}) }
	unavailableCases := map[string]error{
		"admin_shutdown (restart)":       pg("57P01"),
		"cannot_connect_now (starting)":  pg("57P03"),
		"too_many_connections":           pg("53300"),
		"connection_failure":             pg("08006"),
		"serialization_failure":          pg("40001"),
		"deadlock_detected":              pg("40P01"),
		"lock_not_available (lock wait)": pg("55P03"),
		"statement_timeout":              pg("57014"),
		"refused":                        &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED},
		"reset":                          fmt.Errorf("read: %w", syscall.ECONNRESET),
		"eof mid-query":                  fmt.Errorf("read: %w", io.ErrUnexpectedEOF),
		"deadline":                       fmt.Errorf("query: %w", context.DeadlineExceeded),
		"sqlite busy":                    errors.New("database is locked (5) (SQLITE_BUSY)"),
	}
	for name, err := range unavailableCases {
		got := classify(err)
		if !errors.Is(got, domain.ErrUnavailable) || !errors.Is(got, err) {
			t.Errorf("%s: classify = %v, want unavailable wrapping the cause", name, got)
		}
		if again := classify(got); again != got {
			t.Errorf("%s: classified twice", name)
		}
		if tr := translate("op", err); !errors.Is(tr, domain.ErrUnavailable) {
			t.Errorf("%s: translate = %v, want unavailable", name, tr)
		}
	}
	for name, err := range map[string]error{
		"unique violation": pg("23505"),
		"syntax error":     pg("42601"),
		"check violation":  pg("23514"),
		"not found":        gorm.ErrRecordNotFound,
		"plain bug":        errors.New("decode token hash: 3 bytes"),
	} {
		if got := classify(err); errors.Is(got, domain.ErrUnavailable) {
			t.Errorf("%s: classified unavailable: %v", name, got)
		}
	}
}
