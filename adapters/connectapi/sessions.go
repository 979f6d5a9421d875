package connectapi

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/betterkey/backend/domain"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
)

// ListUserSessions implements adminv1connect.AdminServiceHandler. An unknown user is NotFound
// rather than an empty list, so a mistyped id is not mistaken for a user without sessions.
func (s *AdminServer) ListUserSessions(ctx context.Context, req *adminv1.ListUserSessionsRequest) (*adminv1.ListUserSessionsResponse, error) {
	user, err := s.existingUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	list, err := s.identity.Sessions(ctx, user)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]*adminv1.Session, 0, len(list))
	for _, x := range list {
		out = append(out, sessionMessage(x, now))
	}
	return &adminv1.ListUserSessionsResponse{Sessions: out}, nil
}

// RevokeUserSessions implements adminv1connect.AdminServiceHandler. The revocation is recorded as
// done by an admin, which the audit trail keeps.
func (s *AdminServer) RevokeUserSessions(ctx context.Context, req *adminv1.RevokeUserSessionsRequest) (*adminv1.RevokeUserSessionsResponse, error) {
	user, err := s.existingUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	n, err := s.identity.RevokeAllSessions(ctx, user, domain.RevokeAdmin)
	if err != nil {
		return nil, err
	}
	return &adminv1.RevokeUserSessionsResponse{RevokedCount: int32(min(n, math.MaxInt32))}, nil
}

// RevokeSession implements adminv1connect.AdminServiceHandler. A session of another user is
// NotFound, exactly like a session that does not exist.
func (s *AdminServer) RevokeSession(ctx context.Context, req *adminv1.RevokeSessionRequest) (*adminv1.RevokeSessionResponse, error) {
	user, err := parseUserID("user_id", req.GetUserId())
	if err != nil {
		return nil, err
	}
	id, err := parseSessionID("session_id", req.GetSessionId())
	if err != nil {
		return nil, err
	}
	if err := s.identity.RevokeSession(ctx, user, id, domain.RevokeAdmin); err != nil {
		return nil, err
	}
	return &adminv1.RevokeSessionResponse{}, nil
}

// existingUser validates the id and proves the account exists.
func (s *AdminServer) existingUser(ctx context.Context, raw string) (domain.UserID, error) {
	id, err := parseUserID("user_id", raw)
	if err != nil {
		return "", err
	}
	if _, err := s.identity.User(ctx, id); err != nil {
		return "", err
	}
	return id, nil
}

// sessionMessage copies a session without its refresh-token hash; the state is judged at now.
func sessionMessage(x domain.Session, now time.Time) *adminv1.Session {
	m := &adminv1.Session{
		Id:                string(x.ID),
		UserId:            string(x.UserID),
		InstallId:         x.InstallID,
		Device:            deviceMessage(x.Device),
		DeviceName:        x.DeviceName,
		CreatedAt:         timestamp(x.CreatedAt),
		LastUsedAt:        timestamp(x.LastUsedAt),
		IdleExpiresAt:     timestamp(x.IdleExpiresAt),
		AbsoluteExpiresAt: timestamp(x.AbsoluteExpiresAt),
		RevokeReason:      x.RevokeReason,
		State:             sessionState(x, now),
	}
	if x.RevokedAt != nil {
		m.RevokedAt = timestamp(*x.RevokedAt)
	}
	return m
}

func deviceMessage(d domain.Device) adminv1.Device {
	switch d {
	case domain.DevicePhone:
		return adminv1.Device_DEVICE_PHONE
	case domain.DeviceWatch:
		return adminv1.Device_DEVICE_WATCH
	}
	return adminv1.Device_DEVICE_UNSPECIFIED
}

func sessionState(x domain.Session, now time.Time) adminv1.SessionState {
	err := x.Usable(now)
	switch {
	case err == nil:
		return adminv1.SessionState_SESSION_STATE_ACTIVE
	case errors.Is(err, domain.ErrSessionRevoked):
		return adminv1.SessionState_SESSION_STATE_REVOKED
	case errors.Is(err, domain.ErrSessionExpired):
		return adminv1.SessionState_SESSION_STATE_EXPIRED
	}
	return adminv1.SessionState_SESSION_STATE_UNSPECIFIED
}
