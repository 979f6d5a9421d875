package e2e

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"connectrpc.com/connect"

	"github.com/betterkey/backend/adapters/apple/applesim"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
	"github.com/betterkey/backend/gen/betterkey/admin/v1/adminv1connect"
)

// bearer adds an admin token to every call of a Connect client.
func bearer(token string) connect.ClientOption {
	return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}))
}

func TestAdminOverConnect(t *testing.T) {
	e := startServer(t)
	sub := applesim.NewSubject()
	phone := e.signIn(sub, "install-1", "phone")
	watch := e.signIn(sub, "install-2", "watch")

	for _, proto := range []struct {
		name string
		opt  connect.ClientOption
	}{{"connect", connect.WithProtoJSON()}, {"grpc", connect.WithGRPC()}} {
		t.Run(proto.name, func(t *testing.T) {
			c := adminv1connect.NewAdminServiceClient(http.DefaultClient, e.servers.AdminURL(), proto.opt, bearer(canaryAdminToken))
			got, err := c.GetUser(t.Context(), &adminv1.GetUserRequest{Lookup: &adminv1.GetUserRequest_Apple{Apple: &adminv1.AppleIdentity{Issuer: applesim.Issuer, Subject: sub}}})
			if err != nil {
				t.Fatal(err)
			}
			if got.GetUser().GetId() != phone.userID {
				t.Fatalf("user %q, want %q", got.GetUser().GetId(), phone.userID)
			}
			list, err := c.ListUserSessions(t.Context(), &adminv1.ListUserSessionsRequest{UserId: phone.userID})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(list.GetSessions()); n != 2 {
				t.Fatalf("%d sessions, want 2", n)
			}
			_, err = c.GetUser(t.Context(), &adminv1.GetUserRequest{Lookup: &adminv1.GetUserRequest_UserId{UserId: "00000000-0000-4000-8000-000000000000"}})
			if ce := new(connect.Error); !errors.As(err, &ce) || ce.Code() != connect.CodeNotFound {
				t.Fatalf("unknown user: got %v", err)
			}
		})
	}

	t.Run("wrong token refused and changes nothing", func(t *testing.T) {
		c := adminv1connect.NewAdminServiceClient(http.DefaultClient, e.servers.AdminURL(), bearer("not-the-admin-token-but-long-enough-to-look-real"))
		_, err := c.RevokeUserSessions(t.Context(), &adminv1.RevokeUserSessionsRequest{UserId: phone.userID})
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("got %v", err)
		}
		e.expect(e.do("GET", "/v1/me", nil, phone.access), http.StatusOK, "")
	})

	t.Run("revoke all signs every install out at once", func(t *testing.T) {
		c := adminv1connect.NewAdminServiceClient(http.DefaultClient, e.servers.AdminURL(), bearer(canaryAdminToken))
		res, err := c.RevokeUserSessions(t.Context(), &adminv1.RevokeUserSessionsRequest{UserId: phone.userID})
		if err != nil {
			t.Fatal(err)
		}
		if res.GetRevokedCount() != 2 {
			t.Fatalf("revoked %d, want 2", res.GetRevokedCount())
		}
		e.expect(e.do("GET", "/v1/me", nil, phone.access), http.StatusUnauthorized, "SESSION_REVOKED")
		e.expect(e.do("GET", "/v1/me", nil, watch.access), http.StatusUnauthorized, "SESSION_REVOKED")
	})
}
