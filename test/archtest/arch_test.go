// Package archtest guards the hexagon: the core (domain, ports, app) imports no transport, storage,
// wiring or upstream-client technology, so the business rules can be read and tested alone.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

// forbidden are import-path prefixes the core must never reach, directly or transitively.
var forbidden = []string{
	"github.com/gin-gonic/",
	"gorm.io/",
	"connectrpc.com/",
	"go.uber.org/fx",
	"go.uber.org/dig",
	"github.com/hashicorp/vault",
	"github.com/jackc/",
	"github.com/glebarez/",
	"modernc.org/sqlite",
	"github.com/prometheus/",
	"github.com/golang-jwt/",
	"net/http",
	"github.com/betterkey/backend/adapters",
	"github.com/betterkey/backend/cmd",
}

// violations lists the forbidden packages that pattern (relative to the module root) depends on.
func violations(t *testing.T, pattern string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../../"+pattern).CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pattern, err, out)
	}
	var bad []string
	for dep := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				bad = append(bad, dep)
			}
		}
	}
	return bad
}

func TestCoreImportsNoAdapterTechnology(t *testing.T) {
	for _, pattern := range []string{"domain/...", "ports/...", "app/..."} {
		if bad := violations(t, pattern); len(bad) > 0 {
			t.Errorf("%s depends on %v", pattern, bad)
		}
	}
}

// TestCheckerSeesAdapters proves the check can fail: the REST adapter must trip it.
func TestCheckerSeesAdapters(t *testing.T) {
	if bad := violations(t, "adapters/httpapi"); len(bad) == 0 {
		t.Fatal("the checker found nothing forbidden in adapters/httpapi; it is broken")
	}
}

// TestProductionBinaryHasNoSimulators: the simulators reach betterkeyd only through the
// `simulators` build tag, so the binary an operator deploys cannot be pointed at a fake Apple or
// Smartcar by any setting. The tagged build proves the check can see them.
func TestProductionBinaryHasNoSimulators(t *testing.T) {
	sims := []string{"github.com/betterkey/backend/adapters/apple/applesim", "github.com/betterkey/backend/adapters/smartcar/smartcarsim"}
	for _, tags := range []string{"", "simulators"} {
		out, err := exec.Command("go", "list", "-tags", tags, "-deps", "-f", "{{.ImportPath}}", "../../cmd/betterkeyd").CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		deps := "\n" + string(out)
		for _, sim := range sims {
			if got, want := strings.Contains(deps, "\n"+sim+"\n"), tags != ""; got != want {
				t.Errorf("betterkeyd built with tags %q links %s: %v, want %v", tags, sim, got, want)
			}
		}
	}
}
