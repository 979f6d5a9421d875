// Package postgres stores BetterKey's state with GORM: in PostgreSQL in production and in the test
// suite, and in a local SQLite file on a first run and in development, so that one command starts
// everything without a database server. Both dialects run the same stores; only Open and the
// migration set differ. The schema comes from the plain SQL files in migrations/, never from GORM
// AutoMigrate.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"go.opentelemetry.io/otel/trace"
	gormpg "gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/betterkey/backend/adapters/internal/joblock"
)

// The PostgreSQL ceilings the service sets when the URL names none (statement_timeout and
// connect_timeout). A request's own deadline (10 s by default) is the outer bound.
const (
	StatementTimeout = 5 * time.Second
	ConnectTimeout   = 3 * time.Second
)

// Dialect names the database behind a DB. The stores' SQL is common to both; the dialect picks the
// migration set and how connections are pooled.
type Dialect string

// The supported dialects.
const (
	DialectPostgres Dialect = "postgres"
	DialectSQLite   Dialect = "sqlite"
)

// Options tunes connection pools. The zero value suits production; tests and benchmarks may raise
// the limits.
type Options struct {
	// MaxOpenConns caps connections to PostgreSQL, or concurrent readers of a SQLite file (SQLite
	// always has exactly one writer connection). Zero means 20 for PostgreSQL and 4 for SQLite.
	MaxOpenConns int
	// ConnMaxLifetime recycles PostgreSQL connections so that a failover or a pooler restart is
	// picked up. Zero means 30 minutes.
	ConnMaxLifetime time.Duration
	// ConnMaxIdleTime closes PostgreSQL connections idle for longer. Zero means 5 minutes.
	ConnMaxIdleTime time.Duration
	// MigrationLockTimeout is the lock_timeout of migrations on PostgreSQL; zero means
	// DefaultMigrationLockTimeout.
	MigrationLockTimeout time.Duration
	// TracerProvider, when set, traces every statement (see registerTracing).
	TracerProvider trace.TracerProvider
	// BusyTimeout is how long a SQLite statement waits for another process holding the write
	// lock before failing. Zero means 5 seconds.
	BusyTimeout time.Duration
}

func (o Options) withDefaults(d Dialect) Options {
	if o.MaxOpenConns <= 0 {
		o.MaxOpenConns = 20
		if d == DialectSQLite {
			o.MaxOpenConns = 4
		}
	}
	if o.ConnMaxLifetime <= 0 {
		o.ConnMaxLifetime = 30 * time.Minute
	}
	if o.ConnMaxIdleTime <= 0 {
		o.ConnMaxIdleTime = 5 * time.Minute
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.MigrationLockTimeout <= 0 {
		o.MigrationLockTimeout = DefaultMigrationLockTimeout
	}
	return o
}

// DB is an open database. Writes and locking transactions go through w; plain reads through r.
// On PostgreSQL both are the same pool. On SQLite w has a single connection that begins every
// transaction with BEGIN IMMEDIATE, so writers queue in the pool instead of failing with
// SQLITE_BUSY, while r holds read-only connections that WAL lets run alongside the writer.
type DB struct {
	// pgConfig is the parsed PostgreSQL configuration, kept so that migrations get a pool of
	// their own with their own timeouts; nil on SQLite.
	pgConfig *pgx.ConnConfig
	opts     Options
	dialect  Dialect
	w        *gorm.DB
	r        *gorm.DB
	pools    []*sql.DB
	// localJobs is TryRun's lock on SQLite, which serves one process.
	localJobs joblock.Local
}

// Open connects to the database named by rawURL and checks that it answers. A postgres:// or
// postgresql:// URL selects PostgreSQL (pgx); "sqlite:PATH" or a "file:" SQLite URI selects a local
// SQLite file, created if missing. ctx bounds only the opening. It does not migrate; call Migrate.
func Open(ctx context.Context, rawURL string, opts Options) (*DB, error) {
	var (
		db  *DB
		err error
	)
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		db, err = openPostgres(rawURL, opts.withDefaults(DialectPostgres))
	case strings.HasPrefix(rawURL, "sqlite:"), strings.HasPrefix(rawURL, "file:"):
		db, err = openSQLite(ctx, rawURL, opts.withDefaults(DialectSQLite))
	default:
		return nil, errors.New("open database: unsupported url scheme, want postgres, postgresql, sqlite or file")
	}
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := db.Ping(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("open database: %w", err), db.Close())
	}
	return db, nil
}

// Dialect reports which database the DB talks to.
func (db *DB) Dialect() Dialect { return db.dialect }

// Ping checks that the database answers, for readiness probes.
func (db *DB) Ping(ctx context.Context) error {
	for _, p := range db.pools {
		if err := p.PingContext(ctx); err != nil {
			return fmt.Errorf("ping database: %w", classify(err))
		}
	}
	return nil
}

// Close releases every connection; the DB must not be used afterwards.
func (db *DB) Close() error {
	var errs []error
	for _, p := range db.pools {
		if err := p.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close database: %w", err))
		}
	}
	return errors.Join(errs...)
}

// registerCallbacks adds the error classifier and, when configured, tracing.
func registerCallbacks(g *gorm.DB, o Options) error {
	if err := registerClassifier(g); err != nil {
		return err
	}
	if o.TracerProvider != nil {
		return registerTracing(g, o.TracerProvider)
	}
	return nil
}

// gormConfig is shared by every dialect. The logger is silent because GORM would print SQL with
// its bound values, and those include token hashes and personal data; errors reach callers as
// values instead. Single statements need no implicit transaction.
func gormConfig() *gorm.Config {
	return &gorm.Config{
		Logger:                 logger.Discard,
		TranslateError:         true,
		SkipDefaultTransaction: true,
		DisableAutomaticPing:   true,
	}
}

func openPostgres(rawURL string, o Options) (*DB, error) {
	cfg, err := pgx.ParseConfig(rawURL) // its errors redact the password
	if err != nil {
		return nil, fmt.Errorf("parse postgres url: %w", err)
	}
	// Every statement and every session has a ceiling unless the URL sets its own: no query of the
	// service runs for seconds, so one that does is stuck behind a lock or a sick server, and the
	// request is better answered 503 than held. A transaction left open by a dead client is ended
	// too, so its locks do not hold up everyone else.
	for k, v := range map[string]string{
		"application_name":                    "betterkey",
		"statement_timeout":                   StatementTimeout.String(),
		"idle_in_transaction_session_timeout": "30s",
	} {
		if _, ok := cfg.RuntimeParams[k]; !ok {
			cfg.RuntimeParams[k] = v
		}
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = ConnectTimeout
	}
	pool := stdlib.OpenDB(*cfg)
	pool.SetMaxOpenConns(o.MaxOpenConns)
	pool.SetMaxIdleConns(o.MaxOpenConns)
	pool.SetConnMaxLifetime(o.ConnMaxLifetime)
	pool.SetConnMaxIdleTime(o.ConnMaxIdleTime)
	g, err := gorm.Open(gormpg.New(gormpg.Config{Conn: pool}), gormConfig())
	if err == nil {
		err = registerCallbacks(g, o)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("init gorm: %w", err), pool.Close())
	}
	return &DB{pgConfig: cfg, opts: o, dialect: DialectPostgres, w: g, r: g, pools: []*sql.DB{pool}}, nil
}

func openSQLite(ctx context.Context, rawURL string, o Options) (*DB, error) {
	path, query, err := sqlitePath(rawURL)
	if err != nil {
		return nil, err
	}
	common := []string{
		"_pragma=" + url.QueryEscape(fmt.Sprintf("busy_timeout(%d)", o.BusyTimeout.Milliseconds())),
		"_pragma=" + url.QueryEscape("foreign_keys(1)"),
		"_pragma=" + url.QueryEscape("synchronous(NORMAL)"),
	}
	// The writer is opened first: it switches the file to WAL, which the readers rely on.
	writerParams := slices.Concat(common, []string{"_pragma=" + url.QueryEscape("journal_mode(WAL)"), "_txlock=immediate"})
	writer, wp, err := openSQLitePool(ctx, path, query, writerParams, 1, o)
	if err != nil {
		return nil, fmt.Errorf("open sqlite writer: %w", err)
	}
	readerParams := slices.Concat(common, []string{"_pragma=" + url.QueryEscape("query_only(1)")})
	reader, rp, err := openSQLitePool(ctx, path, query, readerParams, o.MaxOpenConns, o)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open sqlite readers: %w", err), wp.Close())
	}
	return &DB{dialect: DialectSQLite, w: writer, r: reader, pools: []*sql.DB{wp, rp}}, nil
}

// openSQLitePool opens a pool of at most n connections that live as long as the DB: SQLite
// connections are cheap to keep and costly to reopen (each re-runs the pragmas).
func openSQLitePool(ctx context.Context, path, query string, params []string, n int, o Options) (*gorm.DB, *sql.DB, error) {
	dsn := path + "?" + strings.Join(params, "&")
	if query != "" {
		dsn += "&" + query
	}
	pool, err := sql.Open(sqlite.DriverName, dsn)
	if err != nil {
		return nil, nil, err
	}
	pool.SetMaxOpenConns(n)
	pool.SetMaxIdleConns(n)
	pool.SetConnMaxLifetime(0)
	pool.SetConnMaxIdleTime(0)
	if err := pool.PingContext(ctx); err != nil { // runs the pragmas now, so a bad file fails Open
		return nil, nil, errors.Join(err, pool.Close())
	}
	g, err := gorm.Open(&sqlite.Dialector{Conn: pool}, gormConfig())
	if err == nil {
		err = registerCallbacks(g, o)
	}
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("init gorm: %w", err), pool.Close())
	}
	return g, pool, nil
}

// sqlitePath turns "sqlite:PATH", "sqlite://PATH" or a "file:" URI into the driver's file name and
// any caller query. Plain paths have their directory created, so a first run needs no setup. An
// in-memory database is refused: every pooled connection would see a different, empty one. A
// file: URI may carry SQLite's own parameters but not the driver's (_pragma, _txlock,
// _time_format): those would undo the settings the stores' correctness rests on.
func sqlitePath(rawURL string) (path, query string, err error) {
	if strings.Contains(rawURL, ":memory:") || strings.Contains(rawURL, "mode=memory") {
		return "", "", errors.New("in-memory sqlite is not supported, use a file")
	}
	if strings.HasPrefix(rawURL, "file:") {
		path, query, _ = strings.Cut(rawURL, "?")
		q, err := url.ParseQuery(query)
		if err != nil {
			return "", "", errors.New("sqlite uri has a malformed query")
		}
		for k := range q {
			if strings.HasPrefix(k, "_") {
				return "", "", fmt.Errorf("sqlite uri parameter %q is set by the adapter", k)
			}
		}
		if dir := filepath.Dir(strings.TrimPrefix(strings.TrimPrefix(path, "file:"), "//")); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return "", "", fmt.Errorf("create database directory: %w", err)
			}
		}
		return path, query, nil
	}
	path = strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite:"), "//")
	if path == "" || strings.ContainsAny(path, "?#") {
		return "", "", errors.New("sqlite url must be sqlite:PATH with a file path free of ? and #")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", "", fmt.Errorf("create database directory: %w", err)
	}
	return path, "", nil
}
