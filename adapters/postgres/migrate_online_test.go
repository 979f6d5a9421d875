package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/postgres/pgtest"
	"github.com/betterkey/backend/migrations"
)

// newestVersion is the number of the last PostgreSQL migration.
func newestVersion(t *testing.T) int64 {
	t.Helper()
	names, err := fs.Glob(migrations.Postgres(), "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	var v int64
	if _, err := fmt.Sscanf(names[len(names)-1], "%d_", &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// previousSchema is a fresh database migrated up to the migration before the newest, opened with
// opts; it returns the database, its URL and the newest version.
func previousSchema(t *testing.T, opts postgres.Options) (*postgres.DB, string, int64) {
	t.Helper()
	newest := newestVersion(t)
	db, url := schemaAt(t, opts, newest-1)
	return db, url, newest
}

// schemaAt returns a fresh database migrated to version, with its URL.
func schemaAt(t *testing.T, opts postgres.Options, version int64) (*postgres.DB, string) {
	t.Helper()
	url := pgtest.NewURL(t)
	db, err := postgres.Open(t.Context(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := postgres.MigrateTo(t.Context(), db, version); err != nil {
		t.Fatal(err)
	}
	return db, url
}

// The newest migration is applied online: while the previous release's queries run on the
// previous schema, it goes through, and neither it nor those queries wait for a lock longer than
// a second (both run with lock_timeout = 1s, so a longer wait is an error).
func TestNewestMigrationRunsUnderLoad(t *testing.T) {
	ctx := context.Background()
	db, url, newest := previousSchema(t, postgres.Options{})

	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	pool, err := pgxpool.New(ctx, url+sep+"options=-c%20lock_timeout%3D1000")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	loadCtx, stop := context.WithCancel(ctx)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		queries int
		errs    []error
	)
	for w := range 8 { // the previous release: sign-ins, session reads and writes on users
		wg.Go(func() {
			for i := 0; loadCtx.Err() == nil; i++ {
				id := uuid.New()
				now := time.Now()
				_, err := pool.Exec(ctx, `INSERT INTO users (id, apple_issuer, apple_subject, created_at, updated_at)
					VALUES ($1, 'https://appleid.apple.com', $2, $3, $3)`, id, fmt.Sprintf("load.%d.%d", w, i), now)
				if err == nil {
					_, err = pool.Exec(ctx, `UPDATE users SET email = 'a@b.c', updated_at = $2 WHERE id = $1`, id, now)
				}
				if err == nil {
					var n int
					err = pool.QueryRow(ctx, `SELECT count(*) FROM users WHERE apple_issuer = 'https://appleid.apple.com' AND apple_subject = $1`,
						fmt.Sprintf("load.%d.%d", w, i)).Scan(&n)
				}
				mu.Lock()
				queries += 3
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // the load is running
	migrated := make(chan error, 1)
	go func() {
		mdb, err := postgres.Open(ctx, url, postgres.Options{MigrationLockTimeout: time.Second})
		if err != nil {
			migrated <- err
			return
		}
		defer mdb.Close()
		migrated <- postgres.MigrateTo(ctx, mdb, newest)
	}()
	err = <-migrated
	time.Sleep(300 * time.Millisecond) // and runs on after it
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("migration %d under load: %v", newest, err)
	}
	if len(errs) > 0 {
		t.Fatalf("%d of %d queries failed while migrating, first: %v", len(errs), queries, errors.Join(errs[0]))
	}
	if err := postgres.CheckMigrated(ctx, db); err != nil {
		t.Fatal(err)
	}
	t.Logf("migration %d applied under %d queries of the previous release, none failed or waited over 1 s", newest, queries)
}

// A migration that cannot get its lock gives up after the lock timeout instead of queueing every
// query behind it; the schema stays where it was and a later run applies it.
func TestMigrationGivesUpOnALockHeldTooLong(t *testing.T) {
	ctx := context.Background()
	// 0008 alters users, so it needs a lock on a table the previous release reads.
	db, url := schemaAt(t, postgres.Options{MigrationLockTimeout: 200 * time.Millisecond}, 7)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE users IN ACCESS SHARE MODE"); err != nil { // a long read
		t.Fatal(err)
	}
	err = postgres.MigrateTo(ctx, db, 8)
	_ = tx.Rollback(ctx)
	if err == nil || !strings.Contains(err.Error(), "55P03") {
		t.Fatalf("migration behind a held lock: %v, want lock_timeout (55P03)", err)
	}
	if postgres.CheckMigrated(ctx, db) == nil {
		t.Fatal("the failed migration left the schema marked migrated")
	}
	if err := postgres.Migrate(ctx, db); err != nil {
		t.Fatalf("retry once the lock is gone: %v", err)
	}
}
