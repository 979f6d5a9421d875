package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/betterkey/backend/cmd/betterkeyd/config"
	"github.com/betterkey/backend/cmd/betterkeyd/wiring"
)

// replicaEnv makes the test binary run as a server process (exactly what betterkeyd's main does)
// instead of running tests: the rolling-deploy and signal tests start replicas this way, so they
// exercise real processes and real signals without a separate go build.
const replicaEnv = "BETTERKEY_E2E_RUN_AS_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(replicaEnv) == "1" {
		os.Exit(runAsServer())
	}
	code := m.Run()
	if n := contractValidated.Load(); n > 0 {
		fmt.Printf("openapi: %d responses validated against api/openapi.yaml\n", n)
	}
	os.Exit(code)
}

func runAsServer() int {
	cfg, err := config.Load(os.Getenv, nil)
	if err != nil {
		os.Stderr.WriteString("invalid configuration: " + err.Error() + "\n")
		return 2
	}
	if err := wiring.Run(cfg, wiring.NewLogger(cfg, os.Stderr)); err != nil {
		os.Stderr.WriteString("server stopped: " + err.Error() + "\n")
		return 1
	}
	return 0
}
