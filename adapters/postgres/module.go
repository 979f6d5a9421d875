package postgres

import (
	"go.uber.org/fx"

	"github.com/betterkey/backend/ports"
)

// Module provides every store of the server as its port interface, which is how betterkeyd's
// wiring gets them, so a graph swaps this module for the in-memory fakes without touching the use
// cases. They all share one *DB, which is what lets a rewrap through the SealedSecretStore be what
// the ConnectionStore reads next. The *DB must be in the graph: the wiring owns opening it (from
// the configured URL), migrating it where the command calls for it, and closing it in an OnStop
// hook, because those steps depend on configuration and on which command runs.
var Module = fx.Module("postgres",
	fx.Provide(
		fx.Annotate(NewUsers, fx.As(new(ports.UserStore))),
		fx.Annotate(NewSessions, fx.As(new(ports.SessionStore))),
		fx.Annotate(NewNonces, fx.As(new(ports.NonceStore))),
		fx.Annotate(NewConnectStates, fx.As(new(ports.ConnectStateStore))),
		fx.Annotate(NewConnections, fx.As(new(ports.ConnectionStore))),
		fx.Annotate(NewSealedSecrets, fx.As(new(ports.SealedSecretStore))),
		fx.Annotate(NewAppleGrants, fx.As(new(ports.AppleGrantStore))),
		fx.Annotate(NewSigningKeys, fx.As(new(ports.SigningKeyStore))),
		// One *Commands in both roles: the use case admits and runs, the webhook worker settles.
		fx.Annotate(NewCommands, fx.As(new(ports.CommandStore)), fx.As(new(ports.CommandSettler))),
		fx.Annotate(NewWebhookInbox, fx.As(new(ports.WebhookInbox))),
	),
)
