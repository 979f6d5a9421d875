package apple

import (
	"go.uber.org/fx"

	"github.com/betterkey/backend/ports"
)

// Module provides the production Apple verifier as ports.AppleVerifier from a Config supplied by
// the wiring. The development-only Unverified is deliberately not provided here: choosing it is
// the config layer's decision, made loudly and only in development.
var Module = fx.Module("apple",
	fx.Provide(fx.Annotate(NewFromConfig, fx.As(new(ports.AppleVerifier)))),
)
