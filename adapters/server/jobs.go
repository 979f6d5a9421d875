package server

import (
	"context"
	"log/slog"
	"time"

	"go.uber.org/fx"

	"github.com/betterkey/backend/app/identity"
)

// sweepInterval spaces housekeeping runs; every replica runs them and they are idempotent.
const sweepInterval = 5 * time.Minute

// runHousekeeping starts the periodic jobs with the app and stops them, waiting, with it.
func runHousekeeping(lc fx.Lifecycle, id *identity.Service, log *slog.Logger) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				defer close(done)
				t := time.NewTicker(sweepInterval)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						if n, err := id.SweepNonces(ctx); err != nil {
							log.Warn("sweep nonces", slog.String("error", err.Error()))
						} else if n > 0 {
							log.Debug("swept expired nonces", slog.Int("count", n))
						}
					}
				}
			}()
			return nil
		},
		OnStop: func(stopCtx context.Context) error {
			cancel()
			select {
			case <-done:
				return nil
			case <-stopCtx.Done():
				return stopCtx.Err()
			}
		},
	})
}
