package connectapi

import "go.uber.org/fx"

// RouteGroup is the fx value group every Connect service joins. The HTTP server consumes the
// group (`group:"connect_routes"` on a []Route parameter) and mounts each route, so a new
// service is added here without touching the server.
const RouteGroup = "connect_routes"

// Module provides the admin API: an *AdminServer and its Route in the RouteGroup group. It needs
// a Config, an *identity.Service, a *keys.Service and a *slog.Logger from the graph.
var Module = fx.Module("connectapi",
	fx.Provide(
		NewAdminServer,
		fx.Annotate(NewHandler, fx.ResultTags(`group:"`+RouteGroup+`"`)),
	),
)
