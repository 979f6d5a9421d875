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
// caller's too), then every Sign in with Apple authorization the account holds is revoked at
// Apple (App Store guideline 5.1.1(v)) and its refresh token deleted, then every vehicle is
// disconnected at Smartcar and deleted with its connection and sealed token set, then the user
// row goes, and with it through the schema's cascades whatever else the account owns (command
// history included). An account that is gone already is not an error.
//
// An Apple token or a vehicle that cannot be revoked or disconnected for a temporary reason
// stops the deletion before the user row goes; the error wraps domain.ErrUnavailable, so the
// caller may simply try again later. With force they are deleted here regardless: the caller
// has tried long enough and erasure must not wait on an upstream forever.
func (s *Service) Delete(ctx context.Context, user domain.UserID, force bool) error {
	if _, err := s.d.Sessions.RevokeAllForUser(ctx, user, s.now(), domain.RevokeAccount); err != nil {
		return fmt.Errorf("revoke sessions: %w", err)
	}
	if err := s.revokeAppleGrants(ctx, user, force); err != nil {
		return err
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

// revokeAppleGrants revokes and deletes the account's Apple refresh tokens. Only a temporary
// failure keeps a grant (and stops the deletion, unless forced): a token Apple refuses for good
// (already revoked, another client's) or one that no longer opens cannot be revoked by anyone,
// so keeping it would only block the erasure.
func (s *Service) revokeAppleGrants(ctx context.Context, user domain.UserID, force bool) error {
	return s.dropAppleGrants(ctx, user, func(g domain.AppleGrant) error {
		if err := s.revokeAppleGrant(ctx, g); err != nil && !force {
			return fmt.Errorf("revoke apple grant: %w", errors.Join(domain.ErrUnavailable, err))
		}
		return nil
	})
}

// ForgetAppleGrants deletes the account's Apple refresh tokens without calling Apple, for when
// the user revoked consent: Apple has invalidated them, and a token that cannot be used is not
// kept (TN3194).
func (s *Service) ForgetAppleGrants(ctx context.Context, user domain.UserID) error {
	return s.dropAppleGrants(ctx, user, func(domain.AppleGrant) error { return nil })
}

// dropAppleGrants deletes each of the user's grants that before lets go.
func (s *Service) dropAppleGrants(ctx context.Context, user domain.UserID, before func(domain.AppleGrant) error) error {
	if s.d.AppleGrants == nil {
		return nil
	}
	grants, err := s.d.AppleGrants.AppleGrants(ctx, user)
	if err != nil {
		return fmt.Errorf("list apple grants: %w", err)
	}
	for _, g := range grants {
		if err := before(g); err != nil {
			return err
		}
		if _, err := s.d.AppleGrants.DeleteAppleGrant(ctx, g); err != nil {
			return fmt.Errorf("delete apple grant: %w", err)
		}
	}
	return nil
}

// revokeAppleGrant revokes one grant at Apple and returns only failures worth retrying.
func (s *Service) revokeAppleGrant(ctx context.Context, g domain.AppleGrant) error {
	if s.d.AppleTokens == nil {
		return nil
	}
	token, err := s.d.Cipher.Open(ctx, g.Binding(), g.RefreshToken)
	switch {
	case errors.Is(err, domain.ErrSealedSecretInvalid):
		return nil
	case err != nil:
		return fmt.Errorf("open apple refresh token: %w", err)
	}
	err = s.d.AppleTokens.Revoke(ctx, g.ClientID, token)
	if t, ok := errors.AsType[temporary](err); ok && !t.Temporary() {
		return nil
	}
	return err
}
