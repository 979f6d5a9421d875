//go:build simulators

package wiring

import (
	"fmt"

	"go.uber.org/fx"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
)

// simulatorsBuilt says whether this binary carries the simulators.
const simulatorsBuilt = true

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
		sim.Close()
		return nil, err
	}
	lc.Append(fx.StopHook(func() { sim.Close(); sc.Close() }))
	return &Simulators{Apple: sim.Handler(), Smartcar: sc.Handler(), AppleClientKey: sim.GenerateClientKey}, nil
}
