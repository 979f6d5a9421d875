package wiring

import (
	"errors"
	"net/http"
)

// Simulators are the upstream simulators mounted under /sim/. Only a development build made with
// `-tags simulators` (what `go tool task run` builds) has them, and only with
// BETTERKEY_SIMULATORS on; a production build does not even link their code, so no setting can
// point a deployed server at a fake Apple or Smartcar.
type Simulators struct {
	Apple, Smartcar http.Handler
	// AppleClientKey registers a client key with the Apple simulator and returns its .p8 PEM,
	// standing in for the key an operator downloads from Apple.
	AppleClientKey func(teamID, keyID string, audiences ...string) ([]byte, error)
}

// errNoSimulators tells a developer who built without the tag how to get the first run back.
var errNoSimulators = errors.New("this betterkeyd is built without the simulators: run `go tool task run` " +
	"(it builds with -tags simulators), or set BETTERKEY_SIMULATORS=false and the Apple and Smartcar settings")
