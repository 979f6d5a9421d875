package vehiclelink

import (
	"context"
	"errors"
	"fmt"

	"github.com/betterkey/backend/domain"
)

// Status returns the vehicle's lock status: the stored one while it is fresher than the status
// TTL, else read through from the vehicle and stored. When the vehicle cannot be asked (asleep,
// upstream down) and an older observation exists, that one is returned; it says when and how it
// was observed, so the app can show its age.
func (s *Service) Status(ctx context.Context, user domain.UserID, id domain.VehicleID) (domain.VehicleStatus, error) {
	v, err := s.Vehicle(ctx, user, id)
	if err != nil {
		return domain.VehicleStatus{}, err
	}
	if !v.Granted(domain.PermissionReadSecurity) { // declined in Connect: not ours to read
		return domain.VehicleStatus{}, domain.ErrScopeNotGranted
	}
	if v.Status != nil && s.now().Sub(v.Status.FetchedAt) < s.cfg.StatusTTL {
		return *v.Status, nil
	}
	var ls domain.LockStatus
	err = s.WithAccess(ctx, v.ConnectionID, func(g domain.VehicleGrant) error {
		var err error
		ls, err = s.d.API.LockStatus(ctx, g, v.SmartcarID)
		return err
	})
	if err != nil {
		if v.Status != nil && !domain.RequiresReconnect(err) && !errors.Is(err, ctx.Err()) {
			return *v.Status, nil
		}
		return domain.VehicleStatus{}, fmt.Errorf("read lock status: %w", err)
	}
	st := domain.VehicleStatus{
		VehicleID: v.ID, Locked: ls.Locked, Doors: ls.Doors, Windows: ls.Windows,
		ObservedAt: ls.ObservedAt, FetchedAt: s.now(), Source: domain.StatusLive,
	}
	if st.ObservedAt.IsZero() {
		st.ObservedAt = st.FetchedAt
	}
	if _, err := s.d.Connections.SaveStatus(ctx, st); err != nil {
		return domain.VehicleStatus{}, fmt.Errorf("store lock status: %w", err)
	}
	return st, nil
}

// Disconnect revokes the app's access to the vehicle at Smartcar and deletes the vehicle, and
// with its last vehicle the connection and its sealed tokens. A connection that is already dead
// upstream (needs re-auth, revoked) is deleted without the upstream call; a temporary upstream
// failure keeps everything, so the owner can retry and nothing dangles at Smartcar.
func (s *Service) Disconnect(ctx context.Context, user domain.UserID, id domain.VehicleID) error {
	v, err := s.Vehicle(ctx, user, id)
	if err != nil {
		return err
	}
	if v.ConnectionStatus == domain.ConnectionActive {
		if err := s.disconnectUpstream(ctx, v); err != nil {
			return err
		}
	}
	if _, err := s.d.Connections.DeleteVehicle(ctx, user, id); err != nil {
		return fmt.Errorf("delete vehicle: %w", err)
	}
	return nil
}

// disconnectUpstream removes the vehicle from the app's grant at Smartcar. A connection that
// turns out to be dead upstream (needs re-auth, revoked) has nothing left to disconnect.
func (s *Service) disconnectUpstream(ctx context.Context, v domain.VehicleView) error {
	err := s.WithAccess(ctx, v.ConnectionID, func(g domain.VehicleGrant) error {
		return s.d.API.Disconnect(ctx, g, v.SmartcarID)
	})
	if err != nil && !domain.RequiresReconnect(err) {
		return fmt.Errorf("disconnect vehicle upstream: %w", err)
	}
	return nil
}
