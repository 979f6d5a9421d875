package connectapi_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/betterkey/backend/domain"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
)

func TestGetUser(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t, nil)
			u := e.seedUser(t, "001234.abcdef", "x1@privaterelay.appleid.com", time.Now().Add(-time.Hour))
			e.seedUser(t, "009999.other", "", time.Now())
			c := e.client(t, p, "Bearer "+adminToken)
			want := &adminv1.User{
				Id:    string(u.ID),
				Apple: &adminv1.AppleIdentity{Issuer: appleIssuer, Subject: "001234.abcdef"},
				Email: "x1@privaterelay.appleid.com", EmailVerified: true, IsPrivateEmail: true,
				CreatedAt: timestamppb.New(u.CreatedAt), UpdatedAt: timestamppb.New(u.UpdatedAt),
			}

			byID, err := c.GetUser(t.Context(), &adminv1.GetUserRequest{Lookup: &adminv1.GetUserRequest_UserId{UserId: string(u.ID)}})
			if err != nil {
				t.Fatalf("GetUser by id: %v", err)
			}
			if diff := cmp.Diff(byID.GetUser(), want, protocmp.Transform()); diff != "" {
				t.Errorf("GetUser by id (-got +want):\n%s", diff)
			}

			byApple, err := c.GetUser(t.Context(), &adminv1.GetUserRequest{Lookup: &adminv1.GetUserRequest_Apple{
				Apple: &adminv1.AppleIdentity{Issuer: appleIssuer, Subject: "001234.abcdef"},
			}})
			if err != nil {
				t.Fatalf("GetUser by apple: %v", err)
			}
			if diff := cmp.Diff(byApple.GetUser(), want, protocmp.Transform()); diff != "" {
				t.Errorf("GetUser by apple (-got +want):\n%s", diff)
			}
		})
	}
}

func TestSessionsLifecycle(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t, nil)
			now := time.Now()
			u := e.seedUser(t, "001234.abcdef", "", now.Add(-200*24*time.Hour))
			expired := e.seedSession(t, u.ID, "install-old", domain.DevicePhone, now.Add(-100*24*time.Hour))
			phone := e.seedSession(t, u.ID, "install-1", domain.DevicePhone, now.Add(-2*time.Hour))
			watch := e.seedSession(t, u.ID, "install-1", domain.DeviceWatch, now.Add(-time.Hour))
			other := e.seedUser(t, "009999.other", "", now)
			e.seedSession(t, other.ID, "install-9", domain.DevicePhone, now)
			c := e.client(t, p, "Bearer "+adminToken)

			list, err := c.ListUserSessions(t.Context(), &adminv1.ListUserSessionsRequest{UserId: string(u.ID)})
			if err != nil {
				t.Fatalf("ListUserSessions: %v", err)
			}
			want := []*adminv1.Session{
				sessionWant(watch, adminv1.Device_DEVICE_WATCH, adminv1.SessionState_SESSION_STATE_ACTIVE),
				sessionWant(phone, adminv1.Device_DEVICE_PHONE, adminv1.SessionState_SESSION_STATE_ACTIVE),
				sessionWant(expired, adminv1.Device_DEVICE_PHONE, adminv1.SessionState_SESSION_STATE_EXPIRED),
			}
			if diff := cmp.Diff(list.GetSessions(), want, protocmp.Transform()); diff != "" {
				t.Errorf("ListUserSessions (-got +want):\n%s", diff)
			}

			if _, err := c.RevokeSession(t.Context(), &adminv1.RevokeSessionRequest{UserId: string(u.ID), SessionId: string(phone.ID)}); err != nil {
				t.Fatalf("RevokeSession: %v", err)
			}
			got, err := e.sessions.Get(t.Context(), phone.ID)
			if err != nil {
				t.Fatalf("get session: %v", err)
			}
			if got.RevokedAt == nil || got.RevokeReason != domain.RevokeAdmin {
				t.Errorf("after RevokeSession: revoked_at %v, reason %q; want set, %q", got.RevokedAt, got.RevokeReason, domain.RevokeAdmin)
			}

			all, err := c.RevokeUserSessions(t.Context(), &adminv1.RevokeUserSessionsRequest{UserId: string(u.ID)})
			if err != nil {
				t.Fatalf("RevokeUserSessions: %v", err)
			}
			// watch and the expired-but-unrevoked session; phone was revoked already.
			if got, want := all.GetRevokedCount(), int32(2); got != want {
				t.Errorf("RevokeUserSessions count = %d, want %d", got, want)
			}
			list, err = c.ListUserSessions(t.Context(), &adminv1.ListUserSessionsRequest{UserId: string(u.ID)})
			if err != nil {
				t.Fatalf("ListUserSessions after revoke: %v", err)
			}
			for _, s := range list.GetSessions() {
				if s.GetState() != adminv1.SessionState_SESSION_STATE_REVOKED || s.GetRevokedAt() == nil || s.GetRevokeReason() != domain.RevokeAdmin {
					t.Errorf("session %s: state %v, revoked_at %v, reason %q; want revoked by admin", s.GetId(), s.GetState(), s.GetRevokedAt(), s.GetRevokeReason())
				}
			}
			if s, _ := e.sessions.ListByUser(t.Context(), other.ID); s[0].RevokedAt != nil {
				t.Errorf("another user's session was revoked")
			}
		})
	}
}

func sessionWant(s domain.Session, d adminv1.Device, st adminv1.SessionState) *adminv1.Session {
	return &adminv1.Session{
		Id: string(s.ID), UserId: string(s.UserID), InstallId: s.InstallID, Device: d, DeviceName: s.DeviceName,
		CreatedAt: timestamppb.New(s.CreatedAt), LastUsedAt: timestamppb.New(s.LastUsedAt),
		IdleExpiresAt: timestamppb.New(s.IdleExpiresAt), AbsoluteExpiresAt: timestamppb.New(s.AbsoluteExpiresAt),
		State: st,
	}
}

// TestAuditLog checks that every call leaves one line with procedure and outcome, names the token
// only by position, and never contains a token.
func TestAuditLog(t *testing.T) {
	e := newEnv(t, nil)
	u := e.seedUser(t, "001234.abcdef", "", time.Now())
	req := &adminv1.ListUserSessionsRequest{UserId: string(u.ID)}
	if _, err := e.client(t, protocols[0], "Bearer "+rotatedToken).ListUserSessions(t.Context(), req); err != nil {
		t.Fatalf("ListUserSessions: %v", err)
	}
	_, _ = e.client(t, protocols[1], "Bearer wrong-token-value").ListUserSessions(t.Context(), req)

	logs := e.logs.String()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d log lines, want 2:\n%s", len(lines), logs)
	}
	for i, want := range [][]string{
		{`"level":"INFO"`, `"msg":"admin call"`, `"procedure":"/betterkey.admin.v1.AdminService/ListUserSessions"`, `"outcome":"ok"`, `"admin_token":1`, `"protocol":"connect"`},
		{`"level":"INFO"`, `"outcome":"unauthenticated"`, `"code":"INVALID_ADMIN_TOKEN"`, `"protocol":"grpc"`},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("log line %d lacks %s:\n%s", i, w, lines[i])
			}
		}
	}
	if strings.Contains(lines[1], "admin_token") {
		t.Errorf("refused call names a token: %s", lines[1])
	}
	for _, secret := range []string{adminToken, rotatedToken, "wrong-token-value", "Bearer"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
}
