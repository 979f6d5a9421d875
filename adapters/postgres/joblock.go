package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/betterkey/backend/ports"
)

var _ ports.JobLock = (*DB)(nil)

// jobLockNamespace is the first key of the jobs' advisory locks ("BKJ\x01"), apart from the
// command admission's per-user locks.
const jobLockNamespace = 1112230401

// unlockTimeout bounds giving a job lock back after its run, whatever the run's context did.
const unlockTimeout = 5 * time.Second

// TryRun implements ports.JobLock. On PostgreSQL the lock is a session-level advisory lock on a
// connection set aside for the run, so the job's own statements run in short transactions of
// their own while it holds; a process that dies releases it with its connection. SQLite serves
// one process, whose single writer serialises the jobs' statements anyway; a mutex per name
// keeps two runs of one job apart.
func (db *DB) TryRun(ctx context.Context, name string, fn func(context.Context) error) (ran bool, runErr error) {
	if db.dialect != DialectPostgres {
		return db.localJobs.TryRun(ctx, name, fn)
	}
	pool, err := db.w.DB()
	if err != nil {
		return false, fmt.Errorf("job lock %s: %w", name, err)
	}
	conn, err := pool.Conn(ctx)
	if err != nil {
		return false, translate("job lock "+name, err)
	}
	defer conn.Close()
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, jobLockNamespace, name).Scan(&got); err != nil {
		return false, translate("job lock "+name, err)
	}
	if !got {
		return false, nil
	}
	// Released in a defer, so that a run that panics (and a caller that recovers) cannot leave
	// the lock with a pooled connection.
	defer func() {
		if err := releaseJobLock(ctx, conn, name); err != nil {
			runErr = errors.Join(runErr, err)
		}
	}()
	return true, fn(ctx)
}

// releaseJobLock gives the lock back; when that fails it discards the connection instead, which
// ends its session and the session's locks with it.
func releaseJobLock(ctx context.Context, conn *sql.Conn, name string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
	defer cancel()
	var released bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, jobLockNamespace, name).Scan(&released); err != nil || !released {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		return fmt.Errorf("job lock %s: release failed; connection discarded", name)
	}
	return nil
}
