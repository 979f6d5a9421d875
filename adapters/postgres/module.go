package postgres

import (
	"go.uber.org/fx"

	"github.com/betterkey/backend/ports"
)

// Module provides the identity stores as their port interfaces, so that a graph swaps between
// this module and the in-memory fakes without touching the use cases. It needs a *DB in the
// graph: the wiring owns opening it (from the configured URL), migrating it where the command
// calls for it, and closing it in an OnStop hook, because those steps depend on configuration
// and on which command runs.
var Module = fx.Module("postgres",
	fx.Provide(
		fx.Annotate(NewUsers, fx.As(new(ports.UserStore))),
		fx.Annotate(NewSessions, fx.As(new(ports.SessionStore))),
		fx.Annotate(NewNonces, fx.As(new(ports.NonceStore))),
	),
)
