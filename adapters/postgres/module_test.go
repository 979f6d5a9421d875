package postgres_test

import (
	"testing"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/postgres/pgtest"
	"github.com/betterkey/backend/ports"
)

func TestModuleProvidesStores(t *testing.T) {
	db := pgtest.OpenSQLite(t)
	var (
		users    ports.UserStore
		sessions ports.SessionStore
		nonces   ports.NonceStore
	)
	app := fxtest.New(t, fx.NopLogger, fx.Supply(db), postgres.Module, fx.Populate(&users, &sessions, &nonces))
	app.RequireStart().RequireStop()
	if users == nil || sessions == nil || nonces == nil {
		t.Fatalf("stores not provided: users=%v sessions=%v nonces=%v", users, sessions, nonces)
	}
}
