//go:build !simulators

package wiring

import (
	"errors"
	"io"
	"testing"

	"github.com/betterkey/backend/adapters/sessiontoken"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
)

// TestProductionBuildRefusesSimulators: a build without the simulators never starts on the
// development defaults (which ask for them) with nothing behind /sim/. Run says why before it
// builds the graph, and the graph's own constructor refuses too (the e2e tests build the graph
// without Run). With them off there are no handlers.
func TestProductionBuildRefusesSimulators(t *testing.T) {
	cfg, err := config.Load(func(string) string { return "" }, sessiontoken.GenerateKey)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Simulators {
		t.Fatal("the development defaults no longer ask for the simulators; this test proves nothing")
	}
	if err := Run(cfg, NewLogger(cfg, io.Discard)); !errors.Is(err, errNoSimulators) {
		t.Fatalf("Run = %v, want errNoSimulators", err)
	}
	if _, err := newSimulators(cfg); !errors.Is(err, errNoSimulators) {
		t.Fatalf("newSimulators = %v, want errNoSimulators", err)
	}
	cfg.Simulators = false
	sims, err := newSimulators(cfg)
	if err != nil || sims.Apple != nil || sims.Smartcar != nil || sims.AppleClientKey != nil {
		t.Fatalf("simulators off: %+v, %v; want none and no error", sims, err)
	}
}
