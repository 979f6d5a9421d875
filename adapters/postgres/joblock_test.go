package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/postgres/pgtest"
)

// A job lock held by one process (its own pool) keeps another from running the job, without
// making it wait; it is released when the run ends, also when the run fails, and other job
// names are not held up.
func TestJobLockRunsOnceAcrossProcesses(t *testing.T) {
	url := pgtest.NewURL(t)
	open := func() *postgres.DB {
		db, err := postgres.Open(t.Context(), url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	a, b := open(), open()
	try := func(db *postgres.DB, name string) bool {
		t.Helper()
		ran, err := db.TryRun(t.Context(), name, func(context.Context) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		return ran
	}
	ran, err := a.TryRun(t.Context(), "retention", func(context.Context) error {
		if try(b, "retention") {
			t.Error("another process ran the job while the lock was held")
		}
		if try(a, "retention") {
			t.Error("the same process ran the job twice at once")
		}
		if !try(b, "other job") {
			t.Error("another job's lock was held up")
		}
		return nil
	})
	if !ran || err != nil {
		t.Fatalf("TryRun = %v, %v", ran, err)
	}
	if !try(b, "retention") {
		t.Fatal("the lock was not released after the run")
	}
	boom := errors.New("boom")
	if ran, err := b.TryRun(t.Context(), "retention", func(context.Context) error { return boom }); !ran || !errors.Is(err, boom) {
		t.Fatalf("failing run = %v, %v; want ran with its error", ran, err)
	}
	if !try(a, "retention") {
		t.Fatal("the lock was not released after a failed run")
	}
	func() {
		defer func() { _ = recover() }()
		_, _ = a.TryRun(t.Context(), "retention", func(context.Context) error { panic("boom") })
	}()
	if !try(b, "retention") {
		t.Fatal("the lock was not released after a run that panicked")
	}
	// A run whose context ends (a drain, a deadline) gives the lock back all the same.
	ctx, cancel := context.WithCancel(t.Context())
	if ran, err := a.TryRun(ctx, "retention", func(ctx context.Context) error { cancel(); return ctx.Err() }); !ran || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run = %v, %v; want ran with its error", ran, err)
	}
	if !try(b, "retention") {
		t.Fatal("the lock was not released after a run whose context ended")
	}
}

// On SQLite, which one process serves, the lock keeps two runs of a job in that process apart.
func TestJobLockOnSQLite(t *testing.T) {
	db := pgtest.OpenSQLite(t)
	ran, err := db.TryRun(t.Context(), "retention", func(ctx context.Context) error {
		again, err := db.TryRun(ctx, "retention", func(context.Context) error { return nil })
		if again || err != nil {
			t.Errorf("nested TryRun = %v, %v; want skipped", again, err)
		}
		return nil
	})
	if !ran || err != nil {
		t.Fatalf("TryRun = %v, %v", ran, err)
	}
}
