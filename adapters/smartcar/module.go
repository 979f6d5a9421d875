package smartcar

import (
	"go.uber.org/fx"

	"github.com/betterkey/backend/ports"
)

// Module provides the Smartcar client as ports.VehicleAPI from a Config supplied by the wiring.
// The first run supplies a Config pointing at the simulator; nothing else changes.
var Module = fx.Module("smartcar",
	fx.Provide(fx.Annotate(NewFromConfig, fx.As(new(ports.VehicleAPI)))),
)
