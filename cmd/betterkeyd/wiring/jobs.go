package wiring

import (
	"context"
	"log/slog"
	"time"

	"go.uber.org/fx"

	"github.com/betterkey/backend/app/identity"
	"github.com/betterkey/backend/app/sessionkeys"
	"github.com/betterkey/backend/app/vehiclelink"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
)

// Housekeeping cadence. Every replica runs the jobs; they are idempotent, and the connection
// refresh lock makes concurrent renewals of one connection harmless.
const (
	sweepInterval = 5 * time.Minute
	renewInterval = 10 * time.Minute
	renewBatch    = 100
)

// job is one periodic task.
type job struct {
	name  string
	every time.Duration
	run   func(ctx context.Context) (int, error)
}

// runHousekeeping starts the periodic jobs with the app and stops them, waiting, with it.
func runHousekeeping(lc fx.Lifecycle, cfg config.Config, id *identity.Service, link *vehiclelink.Service, sk *sessionkeys.Service, log *slog.Logger) {
	jobs := []job{
		{"reload session signing keys", cfg.SessionKeyReload, func(ctx context.Context) (int, error) { return 0, sk.Reload(ctx) }},
		{"sweep nonces", sweepInterval, id.SweepNonces},
		{"sweep connect states", sweepInterval, link.SweepStates},
		{"renew vehicle connections", renewInterval, func(ctx context.Context) (int, error) {
			renewed, failed, err := link.RenewDue(ctx, renewBatch)
			if failed > 0 {
				log.Warn("some vehicle connections could not be renewed", slog.Int("failed", failed))
			}
			return renewed, err
		}},
	}
	startJobs(lc, log, jobs...)
}

// startJobs runs each job in a loop of its own from the app's start, and stops them, waiting,
// with it.
func startJobs(lc fx.Lifecycle, log *slog.Logger, jobs ...job) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, len(jobs))
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			for _, j := range jobs {
				go loop(ctx, j, log, done)
			}
			return nil
		},
		OnStop: func(stopCtx context.Context) error {
			cancel()
			for range jobs {
				select {
				case <-done:
				case <-stopCtx.Done():
					return stopCtx.Err()
				}
			}
			return nil
		},
	})
}

func loop(ctx context.Context, j job, log *slog.Logger, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	t := time.NewTicker(j.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := j.run(ctx)
			if err != nil {
				log.Warn("housekeeping failed", slog.String("job", j.name), slog.String("error", err.Error()))
			} else if n > 0 {
				log.Info("housekeeping", slog.String("job", j.name), slog.Int("count", n))
			}
		}
	}
}
