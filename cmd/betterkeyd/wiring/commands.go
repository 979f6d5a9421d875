package wiring

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"

	"github.com/betterkey/backend/app/command"
	"github.com/betterkey/backend/app/vehiclelink"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// commandOptions wires lock and unlock commands: the settings, the service with its
// Prometheus observer, and the worker's lifecycle. Options lists it before the servers, so on
// stop the HTTP listeners close first (no new commands) and the worker drains after them.
func commandOptions() fx.Option {
	return fx.Options(
		fx.Provide(
			newCommandConfig,
			newCommands,
		),
		fx.Invoke(runCommandWorker),
	)
}

// newCommandConfig is the command settings in effect, from BETTERKEY_COMMAND_* (defaults: SPEC
// §5). It is a provider of its own so that a graph (the end-to-end tests) can fx.Decorate it with
// shorter TTLs and leases.
func newCommandConfig(cfg config.Config) command.Config {
	return command.Config{
		TTL: cfg.CommandTTL, Lease: cfg.CommandLease,
		LockLimit:   ports.CommandRateLimit{Window: cfg.CommandLimitWindow, Max: cfg.CommandLockLimit},
		UnlockLimit: ports.CommandRateLimit{Window: cfg.CommandLimitWindow, Max: cfg.CommandUnlockLimit},
	}
}

type commandDeps struct {
	fx.In
	Cfg         command.Config
	Commands    ports.CommandStore
	Connections ports.ConnectionStore
	Sessions    ports.SessionStore
	API         ports.VehicleAPI
	Link        *vehiclelink.Service
	Registry    *prometheus.Registry
	Log         *slog.Logger
}

func newCommands(d commandDeps) (*command.Service, error) {
	m, err := newCommandMetrics(d.Registry)
	if err != nil {
		return nil, err
	}
	log := d.Log.With(slog.String("component", "commands"))
	return command.New(command.Deps{
		Commands: d.Commands, Connections: d.Connections, Sessions: d.Sessions, API: d.API, Access: d.Link,
		Observer: m,
		Report: func(op string, err error) {
			log.Warn("command background work failed", slog.String("op", op), slog.String("error", err.Error()))
		},
	}, d.Cfg), nil
}

// runCommandWorker starts the worker with the app. On stop it takes no more work, lets the sends
// in progress finish until the stop deadline, and then cuts the rest short, each recorded as
// unknown (sent) or failed (not sent); commands it admitted but never sent are claimed by another
// replica within their TTL, or expire.
func runCommandWorker(lc fx.Lifecycle, svc *command.Service, log *slog.Logger) {
	w := svc.NewWorker()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				defer close(done)
				w.Run(ctx)
			}()
			return nil
		},
		OnStop: func(stopCtx context.Context) error {
			cancel()
			<-done // Run returns at once: its store calls end with its context
			if err := w.Drain(stopCtx); err != nil {
				log.Warn("command worker stopped before every send finished", slog.String("error", err.Error()))
			}
			return nil
		},
	})
}

// commandMetrics is the ports.CommandObserver that feeds Prometheus: outcomes, sends in progress,
// refusals (409 COMMAND_IN_FLIGHT among them) and how long commands take.
type commandMetrics struct {
	admitted  *prometheus.CounterVec
	refused   *prometheus.CounterVec
	conflicts prometheus.Counter
	outcomes  *prometheus.CounterVec
	executing prometheus.Gauge
	duration  *prometheus.HistogramVec
}

func newCommandMetrics(reg prometheus.Registerer) (*commandMetrics, error) {
	const ns, sub = "betterkey", "command"
	m := &commandMetrics{
		admitted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "admitted_total",
			Help: "Lock and unlock commands admitted, by action."}, []string{"action"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "refusals_total",
			Help: "Command submissions refused, by action and stable code."}, []string{"action", "code"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "conflicts_total",
			Help: "Submissions answered 409 COMMAND_IN_FLIGHT because the vehicle had a command in flight."}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "outcomes_total",
			Help: "Commands ended by this process, by action, final status and error code."}, []string{"action", "status", "code"}),
		executing: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "in_flight",
			Help: "Commands this process is sending to the vehicle service right now."}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "duration_seconds",
			Help:    "Time from a command's admission to its end, by action and final status.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 20, 45, 90, 180, 310}}, []string{"action", "status"}),
	}
	for _, c := range []prometheus.Collector{m.admitted, m.refused, m.conflicts, m.outcomes, m.executing, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Admitted implements ports.CommandObserver.
func (m *commandMetrics) Admitted(c domain.Command) {
	m.admitted.WithLabelValues(string(c.Action)).Inc()
}

// Refused implements ports.CommandObserver.
func (m *commandMetrics) Refused(a domain.CommandAction, code string) {
	m.refused.WithLabelValues(string(a), code).Inc()
	if code == domain.ErrCommandInFlight.Code {
		m.conflicts.Inc()
	}
}

// Executing implements ports.CommandObserver.
func (m *commandMetrics) Executing(delta int) { m.executing.Add(float64(delta)) }

// Finished implements ports.CommandObserver.
func (m *commandMetrics) Finished(c domain.Command) {
	m.outcomes.WithLabelValues(string(c.Action), string(c.Status), c.ErrorCode).Inc()
	if c.FinishedAt != nil {
		m.duration.WithLabelValues(string(c.Action), string(c.Status)).Observe(c.FinishedAt.Sub(c.CreatedAt).Seconds())
	}
}
