// Package server composes the product from a config.Config: it chooses the adapters the
// environment allows, wires them to the use cases with fx, and runs the HTTP listeners. main and
// the end-to-end tests build the same graph from here, so what the tests start is what ships.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/betterkey/backend/adapters/apple"
	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/config"
	"github.com/betterkey/backend/adapters/connectapi"
	"github.com/betterkey/backend/adapters/httpapi"
	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/sessiontoken"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/app/account"
	"github.com/betterkey/backend/app/command"
	"github.com/betterkey/backend/app/identity"
	"github.com/betterkey/backend/app/keys"
	"github.com/betterkey/backend/app/vehiclelink"
	"github.com/betterkey/backend/app/webhook"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Options returns the whole application graph for cfg, logging to log.
func Options(cfg config.Config, log *slog.Logger) fx.Option {
	return fx.Options(
		fx.Supply(cfg, log),
		fx.WithLogger(func() fxevent.Logger {
			l := &fxevent.SlogLogger{Logger: log.With(slog.String("component", "fx"))}
			l.UseLogLevel(slog.LevelDebug) // the graph's wiring is noise unless something fails
			return l
		}),
		fx.Provide(
			newRegistry,
			openDatabase,
			fx.Annotate(postgres.NewUsers, fx.As(new(ports.UserStore))),
			fx.Annotate(postgres.NewSessions, fx.As(new(ports.SessionStore))),
			fx.Annotate(postgres.NewNonces, fx.As(new(ports.NonceStore))),
			fx.Annotate(postgres.NewConnectStates, fx.As(new(ports.ConnectStateStore))),
			fx.Annotate(postgres.NewConnections, fx.As(new(ports.ConnectionStore))),
			fx.Annotate(postgres.NewSealedSecrets, fx.As(new(ports.SealedSecretStore))),
			newCipher,
			newKeys,
			newVehicleAPI,
			newVehicleLink,
			newAppleVerifier,
			newAccessTokens,
			newIdentity,
			newAccount,
			newSimulators,
			newREST,
			newAdmin,
			newServers,
		),
		commandOptions(),
		webhookOptions(),
		fx.Invoke(runHousekeeping, func(*Servers) {}),
	)
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// openDatabase opens the database, applies the migrations in development (where the file
// database must just work) and otherwise refuses to serve a schema that is behind the code.
func openDatabase(lc fx.Lifecycle, cfg config.Config) (*postgres.DB, error) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, cfg.DatabaseURL.Reveal(), postgres.Options{})
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(db.Close))
	if cfg.Env == config.Development {
		if err := postgres.Migrate(ctx, db); err != nil {
			return nil, err
		}
		return db, nil
	}
	if err := postgres.CheckMigrated(ctx, db); err != nil {
		return nil, fmt.Errorf("database schema: %w (run `betterkeyd migrate`)", err)
	}
	return db, nil
}

func appleConfig(cfg config.Config) apple.Config {
	return apple.Config{JWKSURL: cfg.AppleJWKSURL, Issuers: cfg.AppleIssuers, Audiences: cfg.AppleAudiences}
}

func newAppleVerifier(cfg config.Config, log *slog.Logger) (ports.AppleVerifier, error) {
	if cfg.DevSkipAppleVerify {
		if cfg.Env != config.Development {
			return nil, fmt.Errorf("apple verification shortcut refused in %s", cfg.Env)
		}
		log.Warn("BETTERKEY_DEV_SKIP_APPLE_VERIFY is on: Apple identity token signatures are NOT checked")
		return apple.NewUnverified(appleConfig(cfg))
	}
	return apple.NewFromConfig(appleConfig(cfg))
}

func newAccessTokens(cfg config.Config) (ports.AccessTokens, error) {
	return sessiontoken.New(sessiontoken.Config{SigningKey: cfg.SessionSigningKey, Issuer: "betterkey", Audience: "betterkey-app"})
}

type identityDeps struct {
	fx.In
	Users    ports.UserStore
	Sessions ports.SessionStore
	Nonces   ports.NonceStore
	Apple    ports.AppleVerifier
	Tokens   ports.AccessTokens
}

func newIdentity(cfg config.Config, d identityDeps) *identity.Service {
	return identity.New(identity.Deps{Users: d.Users, Sessions: d.Sessions, Nonces: d.Nonces, Apple: d.Apple, Tokens: d.Tokens},
		identity.Config{Lifetimes: domain.SessionLifetimes{Access: cfg.AccessTokenTTL, Idle: cfg.SessionIdleTTL, Absolute: cfg.SessionAbsoluteTTL}})
}

func newAccount(users ports.UserStore, sessions ports.SessionStore, conns ports.ConnectionStore, cmds ports.CommandStore, link *vehiclelink.Service) *account.Service {
	return account.New(account.Deps{Users: users, Sessions: sessions, Connections: conns, Commands: cmds, Vehicles: link})
}

// Simulators are the built-in upstream simulators, present only in development with
// BETTERKEY_SIMULATORS on.
type Simulators struct {
	Apple    *applesim.Simulator
	Smartcar *smartcarsim.Simulator
}

func newSimulators(lc fx.Lifecycle, cfg config.Config) (*Simulators, error) {
	if !cfg.Simulators {
		return &Simulators{}, nil
	}
	if cfg.Env != config.Development {
		return nil, fmt.Errorf("simulators refused in %s", cfg.Env)
	}
	aud := ""
	if len(cfg.AppleAudiences) > 0 {
		aud = cfg.AppleAudiences[0]
	}
	sim, err := applesim.New(applesim.Options{DefaultAudience: aud})
	if err != nil {
		return nil, err
	}
	sc, err := smartcarsim.New(smartcarsim.Options{
		ClientID: cfg.SmartcarClientID, ClientSecret: cfg.SmartcarClientSecret.Reveal(),
		RedirectURIs: []string{cfg.SmartcarRedirectURI}, ManagementToken: config.DevSmartcarManagementToken,
		SeedDefaultUser: true, WebhookURL: "http://" + cfg.HTTPAddr + "/v1/webhooks/smartcar",
	})
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(func() { sim.Close(); sc.Close() }))
	return &Simulators{Apple: sim, Smartcar: sc}, nil
}

// REST is the mobile app's HTTP handler.
type REST struct{ http.Handler }

type restDeps struct {
	fx.In
	Cfg      config.Config
	Log      *slog.Logger
	Registry *prometheus.Registry
	Identity *identity.Service
	Vehicles *vehiclelink.Service
	Commands *command.Service
	Webhooks *webhook.Service
	Account  *account.Service
	DB       *postgres.DB
	Cipher   ports.TokenCipher
}

func newREST(d restDeps) (REST, error) {
	h, err := httpapi.New(httpapi.Deps{
		Identity: d.Identity, Vehicles: d.Vehicles, Ready: readiness(d.DB, d.Cipher), Log: d.Log, Registry: d.Registry,
		Commands: d.Commands,
		Webhooks: d.Webhooks,
		Account:  d.Account,
	}, httpapi.Options{
		MaxBodyBytes: d.Cfg.MaxBodyBytes, RequireHTTPS: d.Cfg.Secure(), TrustForwardedProto: d.Cfg.TrustForwardedProto,
		AppReturnURL: d.Cfg.AppReturnURL,
	})
	return REST{h}, err
}

func newAdmin(cfg config.Config, log *slog.Logger, id *identity.Service, k *keys.Service) Admin {
	r := connectapi.NewHandler(connectapi.Config{AdminTokens: cfg.AdminTokens}, connectapi.NewAdminServer(id, k), log)
	return Admin{Path: r.Pattern, Handler: r.Handler}
}
