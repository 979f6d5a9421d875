package wiring

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"

	"github.com/betterkey/backend/adapters/apple"
	"github.com/betterkey/backend/adapters/smartcar"
	"github.com/betterkey/backend/app/account"
	"github.com/betterkey/backend/app/webhook"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// newVehicleEvents verifies Smartcar deliveries with the configured management tokens, current
// first. Staging and production refuse to start without one (the config layer checks); a
// development server without one, simulators off, takes the simulators' development token, which
// is public, so that a local Smartcar simulator can deliver to it.
func newVehicleEvents(cfg config.Config, log *slog.Logger) (ports.VehicleEvents, error) {
	secrets := cfg.SmartcarWebhookSecrets
	if len(secrets) == 0 && cfg.Env == config.Development {
		log.Warn("no Smartcar webhook secret configured: accepting deliveries signed with the public development token")
		secrets = []domain.Secret{domain.NewSecret(config.DevSmartcarManagementToken)}
	}
	return smartcar.NewWebhooks(secrets)
}

// newAppleNotifications verifies Apple's notifications for the primary app id, the first of
// BETTERKEY_APPLE_AUDIENCES, with Apple's keys (see AppleKeys).
func newAppleNotifications(cfg config.Config, keys AppleKeys) (ports.AppleNotificationVerifier, error) {
	ac := appleConfig(cfg)
	primary := ""
	if len(cfg.AppleAudiences) > 0 {
		primary = cfg.AppleAudiences[0]
	}
	return apple.NewNotifications(keys.Verifier, ac, primary)
}

type webhookDeps struct {
	fx.In
	Inbox         ports.WebhookInbox
	Events        ports.VehicleEvents
	Notifications ports.AppleNotificationVerifier
	Connections   ports.ConnectionStore
	Users         ports.UserStore
	Sessions      ports.SessionStore
	Accounts      *account.Service
	Commands      ports.CommandSettler
	// Config tunes the worker; the graph supplies none, so the defaults hold, and tests supply
	// one to make retries quick.
	Config webhook.Config `optional:"true"`
}

func newWebhooks(d webhookDeps) *webhook.Service {
	return webhook.New(webhook.Deps{Inbox: d.Inbox, VehicleEvents: d.Events, Notifications: d.Notifications,
		Connections: d.Connections, Users: d.Users, Sessions: d.Sessions, Accounts: d.Accounts, Commands: d.Commands}, d.Config)
}

// workerObserver counts processed events by outcome and logs the ones that failed. Event ids
// and types are the senders' public identifiers; nothing else of an event is logged.
type workerObserver struct {
	processed *prometheus.CounterVec
	log       *slog.Logger
}

func (o workerObserver) Processed(r webhook.Result) {
	o.processed.WithLabelValues(string(r.Source), string(r.Outcome)).Inc()
	attrs := []any{slog.String("source", string(r.Source)), slog.String("event_id", r.ID), slog.String("type", r.Type),
		slog.String("outcome", string(r.Outcome))}
	if r.Err != nil {
		o.log.Warn("webhook event failed", append(attrs, slog.String("error", r.Err.Error()))...)
		return
	}
	o.log.Debug("webhook event processed", attrs...)
}

func (o workerObserver) ClaimFailed(err error) {
	o.log.Warn("webhook inbox unavailable", slog.String("error", err.Error()))
}

// runWebhookWorker runs this replica's inbox worker with the app, and stops it, waiting, with it
// (the retention janitor sweeps settled events). Every replica runs one: the inbox hands each event to
// one worker at a time, and events a stopped replica held return after their lease.
func runWebhookWorker(lc fx.Lifecycle, svc *webhook.Service, reg *prometheus.Registry, log *slog.Logger) error {
	processed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "betterkey", Subsystem: "webhook", Name: "events_processed_total",
		Help: "Processing attempts of stored pushed events by outcome (applied, stale, unknown_vehicle, marked, retry, failed, ...).",
	}, []string{"source", "outcome"})
	if err := reg.Register(processed); err != nil {
		return err
	}
	obs := workerObserver{processed: processed, log: log.With(slog.String("component", "webhook worker"))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 1)
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				defer func() { done <- struct{}{} }()
				svc.Run(ctx, obs)
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
	return nil
}

// webhookOptions adds the pushed-event use case to the graph: the inbox, the Smartcar and Apple
// verifiers, the service (which the REST transport mounts) and its worker.
func webhookOptions() fx.Option {
	return fx.Options(
		fx.Provide(newVehicleEvents, newAppleNotifications, newWebhooks),
		fx.Invoke(runWebhookWorker),
	)
}
