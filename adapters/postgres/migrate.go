package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/betterkey/backend/migrations"
)

// Migration timeouts on PostgreSQL. A migration that waits for a table lock for longer than
// DefaultMigrationLockTimeout (Options.MigrationLockTimeout) fails instead of queueing every
// query of the live release behind it (retry it off-peak); one statement may run for
// MigrationStatementTimeout, long enough for a CREATE INDEX CONCURRENTLY on a large table.
const (
	DefaultMigrationLockTimeout = 3 * time.Second
	MigrationStatementTimeout   = 15 * time.Minute
)

// Migrate brings the schema up to date with the dialect's embedded SQL migrations. It is what the
// migrate command and the first run call; the stores never create tables themselves. On
// PostgreSQL a session advisory lock lets several replicas call it at once: one migrates, the
// others wait and find nothing left to do.
func Migrate(ctx context.Context, db *DB) error {
	return MigrateTo(ctx, db, 0)
}

// MigrateTo applies the migrations up to version, every one when version is 0; an expand/contract
// rollout and the online-migration test step through versions with it.
func MigrateTo(ctx context.Context, db *DB, version int64) error {
	p, done, err := migrationProvider(db, true)
	if err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	defer done()
	if version > 0 {
		_, err = p.UpTo(ctx, version)
	} else {
		_, err = p.Up(ctx)
	}
	if err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	return nil
}

// migrationProvider returns goose for db and the function that releases what it opened. To
// apply migrations on PostgreSQL it opens a small pool of its own whose sessions carry the
// migration timeouts, and takes the advisory lock; a check only reads the version table, on the
// stores' pool, so a replica's start-up opens no extra connections.
func migrationProvider(db *DB, apply bool) (*goose.Provider, func(), error) {
	dialect, files := goose.DialectSQLite3, migrations.SQLite()
	if db.dialect == DialectPostgres {
		dialect, files = goose.DialectPostgres, migrations.Postgres()
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	pool, err := db.w.DB()
	if err != nil {
		return nil, nil, fmt.Errorf("get connection pool: %w", err)
	}
	done := func() {}
	if apply && db.dialect == DialectPostgres {
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, nil, fmt.Errorf("create migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
		cfg := db.pgConfig.Copy()
		cfg.RuntimeParams["lock_timeout"] = strconv.FormatInt(db.opts.MigrationLockTimeout.Milliseconds(), 10)
		cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(MigrationStatementTimeout.Milliseconds(), 10)
		cfg.RuntimeParams["application_name"] = "betterkey-migrate"
		pool = stdlib.OpenDB(*cfg)
		pool.SetMaxOpenConns(4)
		done = func() { _ = pool.Close() }
	}
	p, err := goose.NewProvider(dialect, pool, files, opts...)
	if err != nil {
		done()
		return nil, nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, done, nil
}
