package server_test

import (
	"io"
	"testing"

	"go.uber.org/fx"

	"github.com/betterkey/backend/adapters/config"
	"github.com/betterkey/backend/adapters/server"
	"github.com/betterkey/backend/adapters/sessiontoken"
)

// TestGraphIsComplete checks the dependency graph of the first-run configuration without
// starting anything.
func TestGraphIsComplete(t *testing.T) {
	cfg, err := config.Load(func(string) string { return "" }, sessiontoken.GenerateKey)
	if err != nil {
		t.Fatal(err)
	}
	log := server.NewLogger(cfg, io.Discard)
	if err := fx.ValidateApp(server.Options(cfg, log)); err != nil {
		t.Fatal(err)
	}
}
