package smartcar

import "go.uber.org/fx"

// Module provides the Smartcar client of the Config's API generation as ports.VehicleAPI from a
// Config supplied by the wiring. The first run supplies a Config pointing at the simulator;
// nothing else changes.
var Module = fx.Module("smartcar", fx.Provide(NewFromConfig))
