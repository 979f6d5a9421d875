package connectapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/betterkey/backend/adapters/connectapi"
	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/app/identity"
	"github.com/betterkey/backend/app/keys"
	"github.com/betterkey/backend/domain"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
	"github.com/betterkey/backend/gen/betterkey/admin/v1/adminv1connect"
)

// routesIn is how a server consumes the route group.
type routesIn struct {
	fx.In
	Routes []connectapi.Route `group:"connect_routes"`
}

func TestModuleProvidesMountableRoutes(t *testing.T) {
	svc := identity.New(identity.Deps{
		Users: memory.NewUsers(), Sessions: memory.NewSessions(), Nonces: memory.NewNonces(), Apple: noApple{}, Tokens: noTokens{},
	}, identity.Config{})
	kc := memory.NewCipher()
	opts := fx.Options(
		connectapi.Module,
		fx.Supply(
			connectapi.Config{AdminTokens: []domain.Secret{domain.NewSecret(adminToken)}},
			svc,
			keys.New(keys.Deps{Keys: kc, Cipher: kc, Secrets: memory.NewSealedSecrets()}),
			slog.New(slog.NewTextHandler(io.Discard, nil)),
		),
		fx.NopLogger,
	)
	if err := fx.ValidateApp(opts); err != nil {
		t.Fatalf("validate app: %v", err)
	}
	var got routesIn
	fxtest.New(t, opts, fx.Populate(&got)).RequireStart().RequireStop()
	if len(got.Routes) != 1 || got.Routes[0].Pattern != "/"+adminv1connect.AdminServiceName+"/" {
		t.Fatalf("routes = %+v, want the AdminService", got.Routes)
	}

	mux := http.NewServeMux()
	for _, r := range got.Routes {
		r.Mount(mux)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := adminv1connect.NewAdminServiceClient(srv.Client(), srv.URL)
	_, err := c.GetUser(t.Context(), &adminv1.GetUserRequest{})
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("call without token: %v, want unauthenticated", err)
	}
}
