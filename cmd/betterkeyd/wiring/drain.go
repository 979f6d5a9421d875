package wiring

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/betterkey/backend/adapters/httpapi"
	"github.com/betterkey/backend/app/command"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
)

// errDraining is what /readyz answers once a stop has begun.
var errDraining = fmt.Errorf("readiness: %w", httpapi.ErrDraining)

// Drain is the replica's stop, in the order a load balancer needs: /readyz fails at once and
// long-polls are answered; the listeners keep serving for the shutdown delay, so traffic moves
// to other replicas without a refused connection; then the listeners shut down within the grace,
// and the command worker sends or settles what it holds (fx's stop, in the hooks' order).
type Drain struct {
	cfg      config.Config
	log      *slog.Logger
	commands *command.Service
	draining atomic.Bool
	active   atomic.Int64 // requests being served
	served   atomic.Int64 // requests ended since the drain began
	gauge    prometheus.Gauge
}

func newDrain(cfg config.Config, log *slog.Logger, reg *prometheus.Registry, cmds *command.Service) (*Drain, error) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "betterkey", Name: "draining",
		Help: "1 while this replica is stopping: /readyz fails and the listeners are closing."})
	if err := reg.Register(g); err != nil {
		return nil, err
	}
	return &Drain{cfg: cfg, log: log.With(slog.String("component", "drain")), commands: cmds, gauge: g}, nil
}

// Draining reports whether a stop has begun.
func (d *Drain) Draining() bool { return d.draining.Load() }

// Track counts the requests h serves, for the drain's log lines. While draining, responses ask
// the client to close its connection, so a keep-alive client reconnects through the load
// balancer to a replica that stays.
func (d *Drain) Track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.active.Add(1)
		defer func() {
			d.active.Add(-1)
			if d.draining.Load() {
				d.served.Add(1)
			}
		}()
		if d.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// Stop drains and then calls stop (the fx app's Stop) with the rest of the time: the delay is
// spent serving, stop gets the grace plus the worker's margin. It logs one line as the drain
// begins and one as it ends.
func (d *Drain) Stop(ctx context.Context, stop func(context.Context) error) error {
	start := time.Now()
	d.draining.Store(true)
	d.gauge.Set(1)
	released := d.commands.ReleaseWaits()
	d.log.Info("drain started", slog.Int64("requests_in_flight", d.active.Load()),
		slog.Int("long_polls_released", released), slog.Duration("delay", d.cfg.ShutdownDelay),
		slog.Duration("grace", d.cfg.ShutdownGrace))
	if d.cfg.ShutdownDelay > 0 {
		t := time.NewTimer(d.cfg.ShutdownDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	err := stop(ctx)
	attrs := []slog.Attr{slog.Duration("duration", time.Since(start)), slog.Int64("requests_served", d.served.Load()),
		slog.Int64("requests_cut", d.active.Load())}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
		d.log.LogAttrs(ctx, slog.LevelWarn, "drain finished late", attrs...)
		return err
	}
	d.log.LogAttrs(ctx, slog.LevelInfo, "drain finished", attrs...)
	return nil
}
