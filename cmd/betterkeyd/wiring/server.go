// Package wiring is betterkeyd's composition root: from a config.Config it chooses the adapters
// the environment allows, wires them to the use cases with fx, and runs the HTTP listeners. It is
// the binary's, not an adapter; main and the end-to-end tests build the same graph from here, so
// what the tests start is what ships.
package wiring

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/betterkey/backend/adapters/apple"
	"github.com/betterkey/backend/adapters/connectapi"
	"github.com/betterkey/backend/adapters/httpapi"
	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/sessiontoken"
	"github.com/betterkey/backend/app/account"
	"github.com/betterkey/backend/app/command"
	"github.com/betterkey/backend/app/identity"
	"github.com/betterkey/backend/app/keys"
	"github.com/betterkey/backend/app/sessionkeys"
	"github.com/betterkey/backend/app/vehiclelink"
	"github.com/betterkey/backend/app/webhook"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
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
		postgres.Module,
		fx.Provide(
			newRegistry,
			newTracerProvider,
			openDatabase,
			newCipher,
			newKeys,
			newVehicleAPI,
			newVehicleLink,
			newAppleVerifier,
			newAppleKeys,
			newAppleTokens,
			newAccessTokens,
			newSessionKeys,
			newIdentity,
			newAccount,
			newSimulators,
			newREST,
			newAdmin,
			newDrain,
			newServers,
			newRetention,
		),
		commandOptions(),
		webhookOptions(),
		fx.Invoke(runHousekeeping, runRetention, func(*Servers) {}),
	)
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// openDatabase opens the database, applies the migrations in development (where the file
// database must just work) and otherwise refuses to serve a schema that is behind the code.
func openDatabase(lc fx.Lifecycle, tp trace.TracerProvider, cfg config.Config) (*postgres.DB, error) {
	ctx := context.Background()
	opts := postgres.Options{MaxOpenConns: cfg.DatabaseMaxConns}
	if tracingOn(tp) {
		opts.TracerProvider = tp
	}
	db, err := postgres.Open(ctx, cfg.DatabaseURL.Reveal(), opts)
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(db.Close))
	if cfg.Env == config.Development {
		if err := postgres.Migrate(ctx, db); err != nil {
			_ = db.Close()
			return nil, err
		}
		return db, nil
	}
	if err := postgres.CheckMigrated(ctx, db); err != nil {
		_ = db.Close() // fx runs no stop hook for a constructor that failed
		return nil, fmt.Errorf("database schema: %w (run `betterkeyd migrate`)", err)
	}
	return db, nil
}

func appleConfig(cfg config.Config) apple.Config {
	return apple.Config{JWKSURL: cfg.AppleJWKSURL, Issuers: cfg.AppleIssuers, Audiences: cfg.AppleAudiences}
}

func newAppleVerifier(cfg config.Config, log *slog.Logger, tp trace.TracerProvider) (ports.AppleVerifier, error) {
	if cfg.DevSkipAppleVerify {
		if cfg.Env != config.Development {
			return nil, fmt.Errorf("apple verification shortcut refused in %s", cfg.Env)
		}
		log.Warn("BETTERKEY_DEV_SKIP_APPLE_VERIFY is on: Apple identity token signatures are NOT checked")
		return apple.NewUnverified(appleConfig(cfg))
	}
	return apple.New(appleConfig(cfg), tracedClient(tp))
}

// newAccessTokens builds the access-token signer, which is also the ring the rotated keys are
// installed on.
func newAccessTokens(cfg config.Config) (ports.AccessTokens, ports.AccessKeyRing, error) {
	s, err := sessiontoken.New(sessiontoken.Config{SigningKey: cfg.SessionSigningKey, VerifyKeys: cfg.SessionVerifyKeys,
		Issuer: "betterkey", Audience: "betterkey-app"})
	if err != nil {
		return nil, nil, err
	}
	return s, s, nil
}

// newSessionKeys provides the signing-key rotation and loads the stored keys before anything
// serves: a replica that signed with the configured key after a rotation retired it would issue
// tokens the others refuse.
func newSessionKeys(lc fx.Lifecycle, cfg config.Config, store ports.SigningKeyStore, c ports.TokenCipher, ring ports.AccessKeyRing) *sessionkeys.Service {
	s := sessionkeys.New(sessionkeys.Deps{Store: store, Cipher: c, Ring: ring, Reload: cfg.SessionKeyReload, AccessTTL: cfg.AccessTokenTTL})
	lc.Append(fx.StartHook(s.Reload))
	return s
}

// newAppleTokens builds the client of Apple's token and revoke endpoints. Without a configured
// client key (development only) the built-in simulator's freshly generated key stands in, or,
// with no simulator either, authorization codes are not redeemed at all.
func newAppleTokens(cfg config.Config, log *slog.Logger, keys AppleKeys, sims *Simulators, tp trace.TracerProvider) (AppleTokens, error) {
	tc := apple.TokenConfig{TokenURL: cfg.AppleTokenURL, RevokeURL: cfg.AppleRevokeURL,
		TeamID: cfg.AppleTeamID, KeyID: cfg.AppleKeyID, PrivateKey: cfg.ApplePrivateKey}
	if tc.PrivateKey.Empty() {
		if sims.AppleClientKey == nil {
			log.Warn("no Apple client key (BETTERKEY_APPLE_TEAM_ID, _KEY_ID, _PRIVATE_KEY): authorization codes are not redeemed, so account deletion cannot revoke Sign in with Apple")
			return AppleTokens{}, nil
		}
		tc.TeamID, tc.KeyID = "SIMTEAM001", "SIMKEY0001"
		p8, err := sims.AppleClientKey(tc.TeamID, tc.KeyID, cfg.AppleAudiences...)
		if err != nil {
			return AppleTokens{}, err
		}
		tc.PrivateKey = domain.NewSecret(string(p8))
	}
	c, err := apple.NewTokenClient(tc, keys.Verifier, tracedClient(tp))
	if err != nil {
		return AppleTokens{}, err
	}
	return AppleTokens{c}, nil
}

// AppleKeys is the verifier of everything Apple signs besides identity tokens: notifications,
// which can delete an account, and the id_token of a code exchange. It is the identity verifier
// when that is the real one, so all share one key cache; with the development shortcut on,
// identity tokens go unverified, but these are still checked, by a verifier of their own.
type AppleKeys struct{ *apple.Verifier }

func newAppleKeys(cfg config.Config, identity ports.AppleVerifier) (AppleKeys, error) {
	if v, ok := identity.(*apple.Verifier); ok {
		return AppleKeys{v}, nil
	}
	v, err := apple.NewFromConfig(appleConfig(cfg))
	return AppleKeys{v}, err
}

// AppleTokens holds the Apple token client, nil when codes are not redeemed. It is a struct so
// that the graph can carry "none" without a nil interface standing in for a port.
type AppleTokens struct{ ports.AppleTokens }

type identityDeps struct {
	fx.In
	Users       ports.UserStore
	Sessions    ports.SessionStore
	Nonces      ports.NonceStore
	Apple       ports.AppleVerifier
	Tokens      ports.AccessTokens
	AppleTokens AppleTokens
	AppleGrants ports.AppleGrantStore
	Cipher      ports.TokenCipher
}

func newIdentity(cfg config.Config, d identityDeps) *identity.Service {
	return identity.New(identity.Deps{Users: d.Users, Sessions: d.Sessions, Nonces: d.Nonces, Apple: d.Apple, Tokens: d.Tokens,
		AppleTokens: d.AppleTokens.AppleTokens, AppleGrants: d.AppleGrants, Cipher: d.Cipher},
		identity.Config{Lifetimes: domain.SessionLifetimes{Access: cfg.AccessTokenTTL, Idle: cfg.SessionIdleTTL, Absolute: cfg.SessionAbsoluteTTL}})
}

type accountDeps struct {
	fx.In
	Users       ports.UserStore
	Sessions    ports.SessionStore
	Connections ports.ConnectionStore
	Commands    ports.CommandStore
	Link        *vehiclelink.Service
	AppleTokens AppleTokens
	AppleGrants ports.AppleGrantStore
	Cipher      ports.TokenCipher
	Log         *slog.Logger
	Registry    *prometheus.Registry
}

// newAccount wires the account service; every Apple grant it deletes without revoking it at
// Apple is logged and counted, since that leaves the user's authorization alive at Apple.
func newAccount(d accountDeps) (*account.Service, error) {
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "betterkey", Subsystem: "account", Name: "apple_grants_dropped_total",
		Help: "Sign in with Apple grants deleted with the account without a revocation at Apple, by reason.",
	}, []string{"reason"})
	if err := d.Registry.Register(dropped); err != nil {
		return nil, err
	}
	return account.New(account.Deps{Users: d.Users, Sessions: d.Sessions, Connections: d.Connections, Commands: d.Commands,
		Vehicles: d.Link, AppleTokens: d.AppleTokens.AppleTokens, AppleGrants: d.AppleGrants, Cipher: d.Cipher,
		AppleGrantDropped: func(user domain.UserID, clientID, reason string, err error) {
			dropped.WithLabelValues(reason).Inc()
			d.Log.Error("apple grant deleted without revocation", slog.String("user_id", string(user)),
				slog.String("client_id", clientID), slog.String("reason", reason), slog.String("error", err.Error()))
		}}), nil
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
	Drain    *Drain
}

func newREST(d restDeps) (REST, error) {
	ready, err := readiness(d.DB, d.Cipher, d.Drain, d.Registry)
	if err != nil {
		return REST{}, err
	}
	h, err := httpapi.New(httpapi.Deps{
		Identity: d.Identity, Vehicles: d.Vehicles, Ready: ready, Log: d.Log, Registry: d.Registry,
		Commands: d.Commands,
		Webhooks: d.Webhooks,
		Account:  d.Account,
	}, httpapi.Options{
		MaxBodyBytes: d.Cfg.MaxBodyBytes, RequireHTTPS: d.Cfg.Secure(), TrustForwardedProto: d.Cfg.TrustForwardedProto,
		AppReturnURL: d.Cfg.AppReturnURL, RequestTimeout: d.Cfg.RequestTimeout, Admission: d.Cfg.Admission,
	})
	return REST{h}, err
}

func newAdmin(cfg config.Config, log *slog.Logger, reg *prometheus.Registry, id *identity.Service, k *keys.Service,
	link *vehiclelink.Service, acct *account.Service, sk *sessionkeys.Service) (Admin, error) {
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "betterkey", Subsystem: "admin", Name: "errors_total",
		Help: "Failed admin (Connect) calls by procedure and stable code."}, []string{"procedure", "code"})
	if err := reg.Register(failed); err != nil {
		return Admin{}, err
	}
	r := connectapi.NewHandler(connectapi.Config{AdminTokens: cfg.AdminTokens, Failed: func(procedure, code string) {
		failed.WithLabelValues(procedure, code).Inc()
	}}, connectapi.NewAdminServer(id, k).WithGrants(link, acct).WithSessionKeys(sk), log)
	return Admin{Path: r.Pattern, Handler: r.Handler}, nil
}
