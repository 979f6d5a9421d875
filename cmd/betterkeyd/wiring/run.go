package wiring

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/fx"

	"github.com/betterkey/backend/cmd/betterkeyd/config"
)

// Run serves cfg until SIGTERM or SIGINT and then drains (see Drain). A second signal during the
// drain exits at once: an operator who asks twice means it.
func Run(cfg config.Config, log *slog.Logger) error {
	if cfg.Simulators && !simulatorsBuilt {
		return errNoSimulators // said before the graph, which would bury it in a chain of constructors
	}
	var drain *Drain
	app := fx.New(Options(cfg, log), fx.StopTimeout(cfg.StopTimeout()), fx.Populate(&drain))
	if err := app.Err(); err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		return err
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sig)
	log.Info("stopping", slog.String("signal", (<-sig).String()))
	go func() {
		s := <-sig
		log.Warn("second signal: exiting without finishing the drain", slog.String("signal", s.String()))
		os.Exit(1)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StopTimeout())
	defer cancel()
	return drain.Stop(ctx, app.Stop)
}
