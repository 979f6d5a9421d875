package wiring

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/app/retention"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
	"github.com/betterkey/backend/ports"
)

type retentionDeps struct {
	fx.In
	Cfg      config.Config
	DB       *postgres.DB
	Sessions ports.SessionStore
	Commands ports.CommandStore
	Inbox    ports.WebhookInbox
}

func newRetention(d retentionDeps) (*retention.Service, error) {
	return retention.New(retention.Deps{Sessions: d.Sessions, Commands: d.Commands, Inbox: d.Inbox, Lock: d.DB},
		retention.Config{Retention: d.Cfg.Retention})
}

// retentionMetrics counts what the janitor deletes and how long each table takes, so an operator
// sees that it keeps up (rows deleted per run level, durations short) or that it does not.
type retentionMetrics struct {
	deleted  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	runs     *prometheus.CounterVec
}

func (m retentionMetrics) Purged(table string, rows int, took time.Duration) {
	m.deleted.WithLabelValues(table).Add(float64(rows))
	m.duration.WithLabelValues(table).Observe(took.Seconds())
}

// runRetention schedules the janitor on every replica; the job lock lets one of them run it at a
// time, the others skip.
func runRetention(lc fx.Lifecycle, cfg config.Config, svc *retention.Service, reg *prometheus.Registry, log *slog.Logger) error {
	m := retentionMetrics{
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "betterkey", Subsystem: "retention",
			Name: "rows_deleted_total", Help: "Rows the retention janitor deleted, by table."}, []string{"table"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "betterkey", Subsystem: "retention",
			Name: "purge_duration_seconds", Help: "How long one run's purge of a table took.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"table"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "betterkey", Subsystem: "retention",
			Name: "runs_total", Help: "Janitor runs by result: ran, skipped (another replica held the lock) or failed."}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.deleted, m.duration, m.runs} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	startJobs(lc, log, job{"retention", cfg.RetentionInterval, func(ctx context.Context) (int, error) {
		rep, err := svc.Run(ctx, m)
		switch {
		case err != nil:
			m.runs.WithLabelValues("failed").Inc()
		case !rep.Ran:
			m.runs.WithLabelValues("skipped").Inc()
		default:
			m.runs.WithLabelValues("ran").Inc()
		}
		return rep.Total(), err
	}})
	return nil
}
