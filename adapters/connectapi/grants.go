package connectapi

import (
	"context"
	"math"

	"github.com/betterkey/backend/domain"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
)

// confirmRevokeAll is the phrase RevokeAllSessions needs, so that no stray or scripted call
// signs out every user by accident.
const confirmRevokeAll = "revoke every session"

var errGrantsNotWired = &domain.Error{Kind: domain.KindFailedPrecondition, Code: "NOT_CONFIGURED",
	Msg: "grant revocation is not available on this server"}

// RevokeUserVehicleGrants implements adminv1connect.AdminServiceHandler.
func (s *AdminServer) RevokeUserVehicleGrants(ctx context.Context, req *adminv1.RevokeUserVehicleGrantsRequest) (*adminv1.RevokeUserVehicleGrantsResponse, error) {
	if s.vehicles == nil {
		return nil, errGrantsNotWired
	}
	user, err := s.existingUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	conns, vehicles, err := s.vehicles.RevokeGrants(ctx, user)
	if err != nil {
		return nil, err
	}
	return &adminv1.RevokeUserVehicleGrantsResponse{ConnectionsRevoked: clamp32(conns), VehiclesDisconnected: clamp32(vehicles)}, nil
}

// RevokeUserAppleGrants implements adminv1connect.AdminServiceHandler.
func (s *AdminServer) RevokeUserAppleGrants(ctx context.Context, req *adminv1.RevokeUserAppleGrantsRequest) (*adminv1.RevokeUserAppleGrantsResponse, error) {
	if s.account == nil {
		return nil, errGrantsNotWired
	}
	user, err := s.existingUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	n, err := s.account.RevokeAppleGrants(ctx, user)
	if err != nil {
		return nil, err
	}
	return &adminv1.RevokeUserAppleGrantsResponse{RevokedCount: clamp32(n)}, nil
}

// RevokeAllSessions implements adminv1connect.AdminServiceHandler.
func (s *AdminServer) RevokeAllSessions(ctx context.Context, req *adminv1.RevokeAllSessionsRequest) (*adminv1.RevokeAllSessionsResponse, error) {
	if req.GetConfirm() != confirmRevokeAll {
		return nil, domain.Invalid("confirm", `must be "`+confirmRevokeAll+`"`)
	}
	n, err := s.identity.RevokeEverySession(ctx)
	if err != nil {
		return nil, err
	}
	return &adminv1.RevokeAllSessionsResponse{RevokedCount: int64(n)}, nil
}

func clamp32(n int) int32 { return int32(min(n, math.MaxInt32)) }
