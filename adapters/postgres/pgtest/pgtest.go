// Package pgtest gives tests a real, migrated database of their own: a fresh PostgreSQL database
// per call (so parallel packages and tests never see each other's rows) or a SQLite file under the
// test's temporary directory. Storage tests run against the engines production runs on; a
// missing PostgreSQL fails the test instead of skipping it, so a green run means the SQL ran.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/betterkey/backend/adapters/postgres"
)

// EnvURL names the environment variable with the admin URL of the test PostgreSQL server; the
// user must be allowed to create and drop databases.
const EnvURL = "BETTERKEY_TEST_DATABASE_URL"

// DefaultURL is the local cluster the Taskfile starts before the tests.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// setupTimeout bounds creating, migrating and dropping a database, so a hung server fails the
// test instead of stalling the run.
const setupTimeout = 30 * time.Second

// Open creates a uniquely named PostgreSQL database, migrates it, and returns it open; the
// database is closed and dropped when the test ends. It fails the test when PostgreSQL does not
// answer.
func Open(tb testing.TB) *postgres.DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	return openAndMigrate(ctx, tb, NewURL(tb))
}

// NewURL creates a uniquely named, empty PostgreSQL database and returns its URL; the database is
// dropped when the test ends. End-to-end tests hand the URL to the server, which migrates it the
// way a deployment would.
func NewURL(tb testing.TB) string {
	tb.Helper()
	admin, err := adminURL()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	name := "bk_" + randomSuffix()
	if err := adminExec(ctx, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("pgtest: PostgreSQL at %s is not usable (start it with "+
			"`pg_ctlcluster --skip-systemctl-redirect <version> main start`, or set %s): %v",
			admin.Redacted(), EnvURL, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if err := adminExec(ctx, admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u := *admin
	u.Path = "/" + name
	return u.String()
}

// OpenSQLite returns a migrated SQLite file database under the test's temporary directory,
// closed when the test ends.
func OpenSQLite(tb testing.TB) *postgres.DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	return openAndMigrate(ctx, tb, "sqlite:"+filepath.Join(tb.TempDir(), "betterkey.db"))
}

// OpenURL opens a database NewURL made and migrates it, closed when the test ends; tests that also
// reach the database with a connection of their own (to seed it in SQL), or open it more than once
// as several processes would, start from the URL.
func OpenURL(tb testing.TB, dbURL string) *postgres.DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	return openAndMigrate(ctx, tb, dbURL)
}

func openAndMigrate(ctx context.Context, tb testing.TB, dbURL string) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(ctx, dbURL, postgres.Options{})
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	if err := postgres.Migrate(ctx, db); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return db
}

// adminURL is the server-level URL from the environment, or the default.
func adminURL() (*url.URL, error) {
	raw := os.Getenv(EnvURL)
	if raw == "" {
		raw = DefaultURL
	}
	u, err := url.Parse(raw)
	if err != nil { // not wrapped: url errors quote the value, which may hold a password
		return nil, fmt.Errorf("%s is not a valid URL", EnvURL)
	}
	return u, nil
}

// adminExec runs one statement on a short-lived connection; CREATE and DROP DATABASE cannot run
// in a transaction or a pool that holds the target open.
func adminExec(ctx context.Context, admin *url.URL, stmt string) error {
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	return nil
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	return hex.EncodeToString(b[:])
}
