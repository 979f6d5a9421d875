//go:build !simulators

package wiring

import "github.com/betterkey/backend/cmd/betterkeyd/config"

// simulatorsBuilt says whether this binary carries the simulators.
const simulatorsBuilt = false

func newSimulators(cfg config.Config) (*Simulators, error) {
	if cfg.Simulators {
		return nil, errNoSimulators
	}
	return &Simulators{}, nil
}
