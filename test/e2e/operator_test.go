package e2e

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/connectapi"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
	"github.com/betterkey/backend/gen/betterkey/admin/v1/adminv1connect"
)

func (e *env) admin() adminv1connect.AdminServiceClient {
	return adminv1connect.NewAdminServiceClient(http.DefaultClient, e.servers.AdminURL(), bearer(canaryAdminToken))
}

// An operator cuts a compromised account off its car: every vehicle is disconnected at Smartcar
// and the connection needs re-auth, so commands are refused; the owner's other data stays.
func TestOperatorRevokesAUsersSmartcarGrants(t *testing.T) {
	e := startServer(t)
	s, cars := e.garage(2)
	bystander, theirs := e.garage(1)
	before := e.sc.Stats().Disconnects

	res, err := e.admin().RevokeUserVehicleGrants(t.Context(), &adminv1.RevokeUserVehicleGrantsRequest{UserId: s.userID})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetConnectionsRevoked() != 1 || res.GetVehiclesDisconnected() != 2 || e.sc.Stats().Disconnects-before != 2 {
		t.Fatalf("revoked %v, %d disconnects at Smartcar; want 1 connection, 2 vehicles", res, e.sc.Stats().Disconnects-before)
	}
	for _, v := range e.vehicles(s.access) {
		if v["status"] != "needs_reauth" {
			t.Errorf("vehicle %v after revocation, want status needs_reauth", v)
		}
	}
	e.expect(e.lock(s.access, cars[0].id, "lock"), http.StatusConflict, "REAUTH_REQUIRED")
	if n := e.carCommands(cars[0]); n != 0 {
		t.Fatalf("%d commands reached the car", n)
	}
	// Again: nothing left to disconnect, the connection stays marked.
	res, err = e.admin().RevokeUserVehicleGrants(t.Context(), &adminv1.RevokeUserVehicleGrantsRequest{UserId: s.userID})
	if err != nil || res.GetVehiclesDisconnected() != 0 || e.sc.Stats().Disconnects-before != 2 {
		t.Fatalf("second revocation: %v, %v", res, err)
	}
	// Other accounts keep their cars.
	r := e.lock(bystander.access, theirs[0].id, "lock")
	if st := e.final(bystander.access, r.str("id")).str("status"); st != "succeeded" {
		t.Fatalf("bystander's lock ended %s", st)
	}
	e.adminLogged(t, "/betterkey.admin.v1.AdminService/RevokeUserVehicleGrants")
}

// An operator revokes a user's Sign in with Apple authorizations at Apple.
func TestOperatorRevokesAUsersAppleGrants(t *testing.T) {
	e := startServer(t)
	sub := applesim.NewSubject()
	_, user := e.signInPhoneAndWatch(sub)
	before := e.apple.Stats().Revocations

	res, err := e.admin().RevokeUserAppleGrants(t.Context(), &adminv1.RevokeUserAppleGrantsRequest{UserId: user})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetRevokedCount() != 2 || e.apple.Stats().Revocations-before != 2 {
		t.Fatalf("revoked %d, Apple saw %d revocations; want 2", res.GetRevokedCount(), e.apple.Stats().Revocations-before)
	}
	for _, aud := range []string{audience, watchAudience} {
		if e.apple.HasActiveGrant(sub, aud) {
			t.Errorf("grant for %s still live at Apple", aud)
		}
	}
	if n := e.appleGrantRows(user); n != 0 {
		t.Fatalf("%d Apple grants still stored", n)
	}
	_, err = e.admin().RevokeUserAppleGrants(t.Context(), &adminv1.RevokeUserAppleGrantsRequest{UserId: "00000000-0000-4000-8000-000000000000"})
	if ce := new(connect.Error); !errors.As(err, &ce) || ce.Code() != connect.CodeNotFound {
		t.Fatalf("unknown user: %v", err)
	}
	e.assertNoAppleTokenLeaks()
	e.adminLogged(t, "/betterkey.admin.v1.AdminService/RevokeUserAppleGrants")
}

// The emergency stop signs every account out at once, and only with its confirmation phrase.
func TestOperatorRevokesEverySession(t *testing.T) {
	e := startServer(t)
	var sessions []session
	for i := range 3 {
		sessions = append(sessions, e.signIn(applesim.NewSubject(), "install", []string{"phone", "watch", "phone"}[i]))
	}
	_, err := e.admin().RevokeAllSessions(t.Context(), &adminv1.RevokeAllSessionsRequest{Confirm: "yes"})
	if ce := new(connect.Error); !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || connectapi.ErrorCode(err) != "VALIDATION_FAILED" {
		t.Fatalf("without the phrase: %v", err)
	}
	for _, s := range sessions {
		e.expect(e.do("GET", "/v1/me", nil, s.access), http.StatusOK, "")
	}
	res, err := e.admin().RevokeAllSessions(t.Context(), &adminv1.RevokeAllSessionsRequest{Confirm: "revoke every session"})
	if err != nil || res.GetRevokedCount() != 3 {
		t.Fatalf("RevokeAllSessions = %v, %v; want 3", res, err)
	}
	for _, s := range sessions {
		e.expect(e.do("GET", "/v1/me", nil, s.access), http.StatusUnauthorized, "SESSION_REVOKED")
		e.expect(e.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": s.refresh}, ""), http.StatusUnauthorized, "")
	}
	after := e.signIn(applesim.NewSubject(), "install", "phone") // signing in again works
	e.expect(e.do("GET", "/v1/me", nil, after.access), http.StatusOK, "")
	e.adminLogged(t, "/betterkey.admin.v1.AdminService/RevokeAllSessions")
}

// adminLogged requires an audit line for a successful call of procedure with the token's index.
func (e *env) adminLogged(t *testing.T, procedure string) {
	t.Helper()
	for line := range strings.SplitSeq(e.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"admin call"`) && strings.Contains(line, `"procedure":"`+procedure+`"`) &&
			strings.Contains(line, `"outcome":"ok"`) && strings.Contains(line, `"admin_token":0`) {
			return
		}
	}
	t.Errorf("no audit line for %s", procedure)
}
