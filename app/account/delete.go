package account

import (
	"context"
	"errors"
	"fmt"

	"github.com/betterkey/backend/domain"
)

// temporary is what upstream errors that may succeed on a later attempt implement.
type temporary interface {
	error
	Temporary() bool
}

// Delete erases the account as far as the product holds data, each step idempotent so a retry
// resumes where a failure stopped: every session is revoked first (access ends at once, the
// caller's too), then every vehicle is disconnected at Smartcar and deleted with its connection
// and sealed token set, then the user row goes, and with it through the schema's cascades
// whatever else the account owns (command history included). An account that is gone already
// is not an error.
//
// A vehicle Smartcar cannot be told about stops the deletion before the user row goes. When
// the failure is temporary the error wraps domain.ErrUnavailable, so the caller may simply try
// again later. With force the vehicle is deleted here regardless: the caller has tried long
// enough and erasure must not wait on an upstream forever.
func (s *Service) Delete(ctx context.Context, user domain.UserID, force bool) error {
	if _, err := s.d.Sessions.RevokeAllForUser(ctx, user, s.now(), domain.RevokeAccount); err != nil {
		return fmt.Errorf("revoke sessions: %w", err)
	}
	vehicles, err := s.d.Connections.Vehicles(ctx, user)
	if err != nil {
		return fmt.Errorf("list vehicles: %w", err)
	}
	for _, v := range vehicles {
		err := s.d.Vehicles.Disconnect(ctx, user, v.ID)
		switch {
		case err == nil, errors.Is(err, domain.ErrNotFound):
			continue
		case !force && retryable(err):
			return fmt.Errorf("disconnect vehicle: %w", errors.Join(domain.ErrUnavailable, err))
		case !force:
			return fmt.Errorf("disconnect vehicle: %w", err)
		}
		if _, err := s.d.Connections.DeleteVehicle(ctx, user, v.ID); err != nil && !errors.Is(err, domain.ErrNotFound) {
			return fmt.Errorf("delete vehicle: %w", err)
		}
	}
	if err := s.d.Users.Delete(ctx, user); err != nil && !errors.Is(err, domain.ErrNotFound) {
		return fmt.Errorf("delete user: %w", err)
	}
	return nil
}

// retryable reports whether a failed disconnect may succeed later without anyone's action: the
// upstream said so, or its error is of the unavailable kind (down, timed out, car asleep).
func retryable(err error) bool {
	if t, ok := errors.AsType[temporary](err); ok && t.Temporary() {
		return true
	}
	return domain.KindOf(err) == domain.KindUnavailable
}
