package postgres

import (
	"context"
	"errors"
	"fmt"
)

// CheckMigrated returns an error when migrations are pending. Staging and production servers call
// it at startup instead of migrating: schema changes are a deliberate deploy step (`betterkeyd
// migrate`), and a server must not run against a schema older than its code.
func CheckMigrated(ctx context.Context, db *DB) error {
	p, done, err := migrationProvider(db, false)
	if err != nil {
		return fmt.Errorf("check migrations: %w", err)
	}
	defer done()
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("check migrations: %w", err)
	}
	if pending {
		return errors.New("check migrations: the database has pending migrations")
	}
	return nil
}
