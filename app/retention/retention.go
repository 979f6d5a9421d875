// Package retention is the janitor: it deletes what domain.Retention says has been kept long
// enough, from every table that grows with use, in bounded batches and on one replica at a time.
package retention

import (
	"context"
	"fmt"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Tables the janitor purges, as its observer and metrics name them.
const (
	TableSessions         = "sessions"
	TableRefreshHistory   = "session_refresh_history"
	TableCommands         = "commands"
	TableCommandAudit     = "command_audit"
	TableInbox            = "webhook_inbox"
	TableDeletionRequests = "deletion_requests"
)

// lockName is the JobLock the janitor runs under.
const lockName = "retention"

// DefaultBatch is how many rows one delete statement removes: small enough that no statement
// holds its locks for long, large enough that a day's rows go in a few hundred statements.
const DefaultBatch = 1000

// Config tunes the janitor; zero values take the defaults.
type Config struct {
	Retention domain.Retention
	// Batch bounds the rows of one delete statement.
	Batch int
}

// Deps are the stores the janitor deletes from, and the lock that keeps it to one replica.
type Deps struct {
	Sessions ports.SessionStore
	Commands ports.CommandStore
	Inbox    ports.WebhookInbox
	Lock     ports.JobLock
}

// Observer hears what a run deleted, per table, for metrics.
type Observer interface {
	Purged(table string, rows int, took time.Duration)
}

// Service runs the janitor. It is safe for concurrent use; concurrent runs, on one replica or
// many, become one run and skips.
type Service struct {
	d   Deps
	cfg Config
	now func() time.Time
}

// New returns the janitor; cfg.Retention must be valid (domain.Retention.Validate), a zero one
// takes domain.DefaultRetention.
func New(d Deps, cfg Config) (*Service, error) {
	if cfg.Retention == (domain.Retention{}) {
		cfg.Retention = domain.DefaultRetention()
	}
	if err := cfg.Retention.Validate(); err != nil {
		return nil, err
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	return &Service{d: d, cfg: cfg, now: time.Now}, nil
}

// WithClock returns a copy reading time from now, for tests.
func (s *Service) WithClock(now func() time.Time) *Service {
	c := *s
	c.now = now
	return &c
}

// Report is what one run deleted, per table; Ran is false when another run held the lock.
type Report struct {
	Ran     bool
	Deleted map[string]int
}

// Total is the rows a run deleted in all.
func (r Report) Total() int {
	n := 0
	for _, v := range r.Deleted {
		n += v
	}
	return n
}

// purge is one table's delete, with its cut-off bound.
type purge struct {
	table string
	del   func(ctx context.Context, limit int) (int, error)
}

// Run deletes, table after table, every row past its retention at the run's start, batch after
// batch until one comes back short, unless another replica is running the janitor. It stops at
// the first failure (the next run picks up where it stopped) and when ctx ends.
func (s *Service) Run(ctx context.Context, o Observer) (Report, error) {
	rep := Report{Deleted: map[string]int{}}
	ran, err := s.d.Lock.TryRun(ctx, lockName, func(ctx context.Context) error {
		for _, p := range s.purges(s.cfg.Retention.Cutoffs(s.now())) {
			start := time.Now()
			n, err := s.drain(ctx, p)
			rep.Deleted[p.table] += n // the inbox is purged per event source
			if o != nil {
				o.Purged(p.table, n, time.Since(start))
			}
			if err != nil {
				return fmt.Errorf("purge %s: %w", p.table, err)
			}
		}
		return nil
	})
	rep.Ran = ran
	return rep, err
}

// drain repeats p's batch until it comes back short.
func (s *Service) drain(ctx context.Context, p purge) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := p.del(ctx, s.cfg.Batch)
		total += n
		if err != nil || n < s.cfg.Batch {
			return total, err
		}
	}
}

// purges lists the deletes of a run. Sessions go before their refresh history, which they take
// along, so the second delete only sees what live sessions rotated away.
func (s *Service) purges(c domain.RetentionCutoffs) []purge {
	inbox := func(src domain.EventSource, before time.Time) func(context.Context, int) (int, error) {
		return func(ctx context.Context, limit int) (int, error) {
			return s.d.Inbox.DeleteFinished(ctx, src, before, limit)
		}
	}
	return []purge{
		{TableSessions, func(ctx context.Context, limit int) (int, error) {
			return s.d.Sessions.DeleteEnded(ctx, c.SessionsEnded, limit)
		}},
		{TableRefreshHistory, func(ctx context.Context, limit int) (int, error) {
			return s.d.Sessions.DeleteRotatedBefore(ctx, c.RefreshRotated, limit)
		}},
		{TableCommands, func(ctx context.Context, limit int) (int, error) {
			return s.d.Commands.DeleteFinished(ctx, c.CommandsCreated, limit)
		}},
		{TableCommandAudit, func(ctx context.Context, limit int) (int, error) {
			return s.d.Commands.DeleteAuditBefore(ctx, c.CommandsCreated, limit)
		}},
		{TableInbox, inbox(domain.SourceSmartcar, c.InboxReceived)},
		{TableInbox, inbox(domain.SourceApple, c.InboxReceived)},
		{TableDeletionRequests, inbox(domain.SourceAccount, c.DeletionRequestsReceived)},
	}
}
