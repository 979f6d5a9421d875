package apple_test

import (
	"testing"

	"go.uber.org/fx"

	"github.com/betterkey/backend/adapters/apple"
	"github.com/betterkey/backend/ports"
)

func TestModuleProvidesAppleVerifier(t *testing.T) {
	var v ports.AppleVerifier
	app := fx.New(
		fx.NopLogger,
		fx.Supply(apple.Config{Audiences: []string{phoneAud}}),
		apple.Module,
		fx.Populate(&v),
	)
	if err := app.Err(); err != nil {
		t.Fatalf("fx app: %v", err)
	}
	if _, ok := v.(*apple.Verifier); !ok {
		t.Fatalf("provided %T, want *apple.Verifier", v)
	}
}
