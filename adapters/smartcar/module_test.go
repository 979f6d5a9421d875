package smartcar_test

import (
	"fmt"
	"testing"

	"go.uber.org/fx"

	"github.com/betterkey/backend/adapters/smartcar"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

func TestModuleProvidesVehicleAPI(t *testing.T) {
	for api, want := range map[smartcar.API]string{"": "*smartcar.Client", smartcar.APIv2: "*smartcar.Client", smartcar.APIv3: "*smartcar.V3"} {
		var v ports.VehicleAPI
		app := fx.New(
			fx.NopLogger,
			fx.Supply(smartcar.Config{ClientID: "id", ClientSecret: domain.NewSecret("s"), RedirectURI: redirectURI,
				API: api, ManagementToken: domain.NewSecret("amt")}),
			smartcar.Module,
			fx.Populate(&v),
		)
		if err := app.Err(); err != nil {
			t.Fatalf("fx app: %v", err)
		}
		if got := fmt.Sprintf("%T", v); got != want {
			t.Errorf("API %q: provided %s, want %s", api, got, want)
		}
	}
}
