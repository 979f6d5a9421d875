package wiring

import (
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/fx/fxtest"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/postgres/pgtest"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
	"github.com/betterkey/backend/domain"
)

// Outside development a server refuses to start on a schema behind its code: migrations are a
// deliberate deploy step. Development migrates by itself.
func TestStartRefusesPendingMigrationsOutsideDevelopment(t *testing.T) {
	for _, env := range []config.Env{config.Staging, config.Production} {
		url := pgtest.NewURL(t)
		lc := fxtest.NewLifecycle(t)
		_, err := openDatabase(lc, noop.NewTracerProvider(), config.Config{Env: env, DatabaseURL: domain.NewSecret(url)})
		if err == nil || !strings.Contains(err.Error(), "pending migrations") {
			t.Fatalf("%s on an empty database: %v, want a refusal naming pending migrations", env, err)
		}
	}
	url := pgtest.NewURL(t)
	lc := fxtest.NewLifecycle(t)
	db, err := openDatabase(lc, noop.NewTracerProvider(), config.Config{Env: config.Development, DatabaseURL: domain.NewSecret(url)})
	if err != nil {
		t.Fatalf("development: %v", err)
	}
	if err := postgres.CheckMigrated(t.Context(), db); err != nil {
		t.Fatalf("development did not migrate: %v", err)
	}
	lc.RequireStart().RequireStop()

	lc = fxtest.NewLifecycle(t) // and once migrated, production starts
	if _, err := openDatabase(lc, noop.NewTracerProvider(), config.Config{Env: config.Production, DatabaseURL: domain.NewSecret(url)}); err != nil {
		t.Fatalf("production on a migrated database: %v", err)
	}
	lc.RequireStart().RequireStop()
}
