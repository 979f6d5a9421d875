package connectapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/domain"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
)

const unauthMsg = "admin token is missing or invalid"

func TestUnauthenticated(t *testing.T) {
	sameLength := strings.Repeat("x", len(adminToken))
	tests := []struct {
		name          string
		authorization []string
	}{
		{name: "missing"},
		{name: "wrong token of the same length", authorization: []string{"Bearer " + sameLength}},
		{name: "shorter token", authorization: []string{"Bearer adm"}},
		{name: "longer token", authorization: []string{"Bearer " + adminToken + "x"}},
		{name: "prefix of a token", authorization: []string{"Bearer " + adminToken[:len(adminToken)-1]}},
		{name: "other scheme", authorization: []string{"Basic " + adminToken}},
		{name: "no scheme", authorization: []string{adminToken}},
		{name: "empty bearer", authorization: []string{"Bearer "}},
		{name: "two headers", authorization: []string{"Bearer " + adminToken, "Bearer " + sameLength}},
		{name: "oversized", authorization: []string{"Bearer " + strings.Repeat("a", 4096)}},
	}
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t, nil)
			u := e.seedUser(t, "001234.abcdef", "", time.Now())
			s := e.seedSession(t, u.ID, "install-1", domain.DevicePhone, time.Now())
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					c := e.client(t, p, tt.authorization...)
					_, err := c.RevokeSession(t.Context(), &adminv1.RevokeSessionRequest{UserId: string(u.ID), SessionId: string(s.ID)})
					wantError(t, err, connect.CodeUnauthenticated, unauthMsg, "INVALID_ADMIN_TOKEN")
				})
			}
			if got, _ := e.sessions.Get(t.Context(), s.ID); got.RevokedAt != nil {
				t.Errorf("a refused call revoked the session")
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now()
	u := e.seedUser(t, "001234.abcdef", "", now)
	other := e.seedUser(t, "009999.other", "", now)
	otherSession := e.seedSession(t, other.ID, "install-9", domain.DevicePhone, now)
	unknown := string(domain.NewUserID())
	const invalidID = "user_id: must be a lowercase UUID"

	tests := []struct {
		name string
		call func(context.Context, *env, protocol) error
		code connect.Code
		msg  string
		sc   string
	}{
		{"get unknown user", getUser(unknown), connect.CodeNotFound, "not found", "NOT_FOUND"},
		{"get unknown apple subject", getApple(appleIssuer, "nobody"), connect.CodeNotFound, "not found", "NOT_FOUND"},
		{"list unknown user", listSessions(unknown), connect.CodeNotFound, "not found", "NOT_FOUND"},
		{"revoke all of unknown user", revokeAll(unknown), connect.CodeNotFound, "not found", "NOT_FOUND"},
		{"revoke unknown session", revokeOne(string(u.ID), unknown), connect.CodeNotFound, "not found", "NOT_FOUND"},
		{"revoke another user's session", revokeOne(string(u.ID), string(otherSession.ID)), connect.CodeNotFound, "not found", "NOT_FOUND"},
		{"get malformed id", getUser("42"), connect.CodeInvalidArgument, invalidID, "VALIDATION_FAILED"},
		{"get uppercase id", getUser(strings.ToUpper(string(u.ID))), connect.CodeInvalidArgument, invalidID, "VALIDATION_FAILED"},
		{"get without lookup", getUser(""), connect.CodeInvalidArgument, "lookup: one of user_id or apple is required", "VALIDATION_FAILED"},
		{"get apple without subject", getApple(appleIssuer, ""), connect.CodeInvalidArgument, "apple.subject: is required and at most 255 bytes", "VALIDATION_FAILED"},
		{"get apple without issuer", getApple("", "001234.abcdef"), connect.CodeInvalidArgument, "apple.issuer: is required and at most 255 bytes", "VALIDATION_FAILED"},
		{"list malformed id", listSessions("../etc"), connect.CodeInvalidArgument, invalidID, "VALIDATION_FAILED"},
		{"revoke all malformed id", revokeAll(""), connect.CodeInvalidArgument, invalidID, "VALIDATION_FAILED"},
		{"revoke malformed session id", revokeOne(string(u.ID), "x"), connect.CodeInvalidArgument, "session_id: must be a lowercase UUID", "VALIDATION_FAILED"},
	}
	for _, p := range protocols {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				wantError(t, tt.call(t.Context(), e, p), tt.code, tt.msg, tt.sc)
			})
		}
	}
	if got, _ := e.sessions.Get(t.Context(), otherSession.ID); got.RevokedAt != nil {
		t.Errorf("another user's session was revoked")
	}
}

func getUser(id string) func(context.Context, *env, protocol) error {
	return func(ctx context.Context, e *env, p protocol) error {
		req := &adminv1.GetUserRequest{}
		if id != "" {
			req.Lookup = &adminv1.GetUserRequest_UserId{UserId: id}
		}
		_, err := e.admin(p).GetUser(ctx, req)
		return err
	}
}

func getApple(issuer, subject string) func(context.Context, *env, protocol) error {
	return func(ctx context.Context, e *env, p protocol) error {
		_, err := e.admin(p).GetUser(ctx, &adminv1.GetUserRequest{Lookup: &adminv1.GetUserRequest_Apple{
			Apple: &adminv1.AppleIdentity{Issuer: issuer, Subject: subject},
		}})
		return err
	}
}

func listSessions(user string) func(context.Context, *env, protocol) error {
	return func(ctx context.Context, e *env, p protocol) error {
		_, err := e.admin(p).ListUserSessions(ctx, &adminv1.ListUserSessionsRequest{UserId: user})
		return err
	}
}

func revokeAll(user string) func(context.Context, *env, protocol) error {
	return func(ctx context.Context, e *env, p protocol) error {
		_, err := e.admin(p).RevokeUserSessions(ctx, &adminv1.RevokeUserSessionsRequest{UserId: user})
		return err
	}
}

func revokeOne(user, session string) func(context.Context, *env, protocol) error {
	return func(ctx context.Context, e *env, p protocol) error {
		_, err := e.admin(p).RevokeSession(ctx, &adminv1.RevokeSessionRequest{UserId: user, SessionId: session})
		return err
	}
}

// failingUsers is a user store whose database is broken in a way whose text must stay private.
type failingUsers struct {
	*memory.Users
	panics bool
}

func (f failingUsers) Get(context.Context, domain.UserID) (domain.User, error) {
	if f.panics {
		panic("store exploded: " + internalCanary)
	}
	return domain.User{}, fmt.Errorf("select user: %s", internalCanary)
}

func TestInternalErrorsDoNotLeak(t *testing.T) {
	for _, panics := range []bool{false, true} {
		e := newEnv(t, failingUsers{Users: memory.NewUsers(), panics: panics})
		for _, p := range protocols {
			t.Run(fmt.Sprintf("%s/panic=%v", p.name, panics), func(t *testing.T) {
				err := getUser(string(domain.NewUserID()))(t.Context(), e, p)
				wantError(t, err, connect.CodeInternal, "internal error", "INTERNAL")
				if strings.Contains(err.Error(), "canary") || strings.Contains(fmt.Sprintf("%+v", err), "canary") {
					t.Errorf("client error leaks internal text: %v", err)
				}
			})
		}
		// The server keeps the cause, at error level, for the operator.
		if logs := e.logs.String(); !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, "canary-db-secret") {
			t.Errorf("server log lacks the internal cause:\n%s", logs)
		}
	}
}
