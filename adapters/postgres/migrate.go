package postgres

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/betterkey/backend/migrations"
)

// Migrate brings the schema up to date with the dialect's embedded SQL migrations. It is what the
// migrate command and the first run call; the stores never create tables themselves. On
// PostgreSQL a session advisory lock lets several replicas call it at once: one migrates, the
// others wait and find nothing left to do.
func Migrate(ctx context.Context, db *DB) error {
	p, err := migrationProvider(db)
	if err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	return nil
}

func migrationProvider(db *DB) (*goose.Provider, error) {
	var (
		dialect goose.Dialect
		files   fs.FS
		opts    = []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	)
	switch db.dialect {
	case DialectPostgres:
		dialect, files = goose.DialectPostgres, migrations.Postgres()
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, fmt.Errorf("create migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	default:
		dialect, files = goose.DialectSQLite3, migrations.SQLite()
	}
	pool, err := db.w.DB()
	if err != nil {
		return nil, fmt.Errorf("get connection pool: %w", err)
	}
	p, err := goose.NewProvider(dialect, pool, files, opts...)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, nil
}
