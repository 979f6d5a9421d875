package smartcar_test

import (
	"testing"

	"go.uber.org/fx"

	"github.com/betterkey/backend/adapters/smartcar"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

func TestModuleProvidesVehicleAPI(t *testing.T) {
	var v ports.VehicleAPI
	app := fx.New(
		fx.NopLogger,
		fx.Supply(smartcar.Config{ClientID: "id", ClientSecret: domain.NewSecret("s"), RedirectURI: redirectURI}),
		smartcar.Module,
		fx.Populate(&v),
	)
	if err := app.Err(); err != nil {
		t.Fatalf("fx app: %v", err)
	}
	if _, ok := v.(*smartcar.Client); !ok {
		t.Fatalf("provided %T, want *smartcar.Client", v)
	}
}
