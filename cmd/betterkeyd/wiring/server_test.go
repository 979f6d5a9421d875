package wiring_test

import (
	"io"
	"testing"

	"go.uber.org/fx"

	"github.com/betterkey/backend/adapters/sessiontoken"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
	"github.com/betterkey/backend/cmd/betterkeyd/wiring"
)

// TestGraphIsComplete checks the dependency graph of the first-run configuration without
// starting anything.
func TestGraphIsComplete(t *testing.T) {
	cfg, err := config.Load(func(string) string { return "" }, sessiontoken.GenerateKey)
	if err != nil {
		t.Fatal(err)
	}
	log := wiring.NewLogger(cfg, io.Discard)
	if err := fx.ValidateApp(wiring.Options(cfg, log)); err != nil {
		t.Fatal(err)
	}
}

// TestGraphIsCompleteWithTheVerifyShortcut: with identity tokens unverified (development only),
// notifications and code exchanges still get a verifier of Apple's keys.
func TestGraphIsCompleteWithTheVerifyShortcut(t *testing.T) {
	env := map[string]string{"BETTERKEY_DEV_SKIP_APPLE_VERIFY": "true"}
	cfg, err := config.Load(func(k string) string { return env[k] }, sessiontoken.GenerateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.ValidateApp(wiring.Options(cfg, wiring.NewLogger(cfg, io.Discard))); err != nil {
		t.Fatal(err)
	}
}
