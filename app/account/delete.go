package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/betterkey/backend/domain"
)

// temporary is what upstream errors that may succeed on a later attempt implement.
type temporary interface {
	error
	Temporary() bool
}

// Delete erases the account as far as the product holds data, each step idempotent so a retry
// resumes where a failure stopped: the account is marked as being deleted, so sign-in refuses it
// with domain.ErrAccountDeletionPending until the erasure is done; every session is revoked (access ends at once, the
// caller's too), then every Sign in with Apple authorization the account holds is revoked at
// Apple (App Store guideline 5.1.1(v)) and its refresh token deleted, then every vehicle is
// disconnected at Smartcar and deleted with its connection and sealed token set, then the lock
// and unlock history moves to the audit log under pseudonyms (ports.CommandStore.ArchiveHistory),
// then the user row goes, and with it through the schema's cascades whatever else the account
// owns. An account that is gone already is not an error.
//
// An Apple token or a vehicle that cannot be revoked or disconnected for a temporary reason
// stops the deletion before the user row goes; the error wraps domain.ErrUnavailable, so the
// caller may simply try again later. What force names is deleted here regardless: the caller
// has tried long enough and erasure must not wait on an upstream forever. Every Apple grant
// deleted without a revocation is reported to Deps.AppleGrantDropped.
//
// A sign-in that passed its check just before the mark may still store an Apple grant after the
// first pass; the grants are revoked again right before the user row goes.
func (s *Service) Delete(ctx context.Context, user domain.UserID, force domain.ErasureForce) error {
	// The mark comes first, so that no sign-in starts a session (or stores an Apple grant) on an
	// account whose sessions and grants are about to be revoked.
	if err := s.d.Users.MarkDeleting(ctx, user, s.now()); err != nil && !errors.Is(err, domain.ErrNotFound) {
		return fmt.Errorf("mark account deleting: %w", err)
	}
	if _, err := s.d.Sessions.RevokeAllForUser(ctx, user, s.now(), domain.RevokeAccount); err != nil {
		return fmt.Errorf("revoke sessions: %w", err)
	}
	if _, err := s.revokeAppleGrants(ctx, user, force.Apple); err != nil {
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
		case !force.Vehicles && retryable(err):
			return fmt.Errorf("disconnect vehicle: %w", errors.Join(domain.ErrUnavailable, err))
		case !force.Vehicles:
			return fmt.Errorf("disconnect vehicle: %w", err)
		}
		if _, err := s.d.Connections.DeleteVehicle(ctx, user, v.ID); err != nil && !errors.Is(err, domain.ErrNotFound) {
			return fmt.Errorf("delete vehicle: %w", err)
		}
	}
	if _, err := s.revokeAppleGrants(ctx, user, force.Apple); err != nil {
		return err
	}
	if s.d.Commands != nil {
		if _, err := s.d.Commands.ArchiveHistory(ctx, user, s.now()); err != nil {
			return fmt.Errorf("archive command history: %w", err)
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

// maxGrantRounds bounds how often revokeAppleGrants lists again because a sign-in replaced a
// grant it was revoking.
const maxGrantRounds = 3

// revokeAppleGrants revokes and deletes the account's Apple refresh tokens until none is left.
// Only a temporary failure keeps a grant (and stops the deletion, unless forced): a token Apple
// refuses for good or one that no longer opens cannot be revoked by anyone, so keeping it would
// only block the erasure. It reports how many grants it ended (revoked, or dropped as above).
func (s *Service) revokeAppleGrants(ctx context.Context, user domain.UserID, force bool) (ended int, err error) {
	for range maxGrantRounds {
		left, err := s.dropAppleGrants(ctx, user, func(g domain.AppleGrant) error {
			err := s.revokeAppleGrant(ctx, g)
			switch {
			case err == nil:
			case !appleRetryable(err):
				s.dropped(g, refusalReason(err), err)
			case force:
				s.dropped(g, "forced", err)
			default:
				return fmt.Errorf("revoke apple grant: %w", errors.Join(domain.ErrUnavailable, err))
			}
			ended++
			return nil
		})
		if err != nil || !left {
			return ended, err
		}
	}
	return ended, fmt.Errorf("revoke apple grants: replaced by sign-ins while revoking: %w", domain.ErrUnavailable)
}

// ForgetAppleGrants deletes, without calling Apple, the account's Apple refresh tokens obtained
// before revokedAt (all of them when it is zero), for when the user revoked consent then: Apple
// has invalidated them, and a token that cannot be used is not kept (TN3194). A grant obtained
// later, after the user consented again, is alive and stays, however late the news arrives.
func (s *Service) ForgetAppleGrants(ctx context.Context, user domain.UserID, revokedAt time.Time) error {
	_, err := s.dropAppleGrants(ctx, user, func(g domain.AppleGrant) error {
		if !revokedAt.IsZero() && !g.CreatedAt.Before(revokedAt) {
			return errKeepGrant
		}
		return nil
	})
	return err
}

// errKeepGrant tells dropAppleGrants to pass a grant over.
var errKeepGrant = errors.New("keep apple grant")

// dropAppleGrants deletes each of the user's grants that before lets go. It reports whether a
// grant was replaced meanwhile (a sign-in stored a newer token), so the caller looks again.
func (s *Service) dropAppleGrants(ctx context.Context, user domain.UserID, before func(domain.AppleGrant) error) (bool, error) {
	if s.d.AppleGrants == nil {
		return false, nil
	}
	grants, err := s.d.AppleGrants.AppleGrants(ctx, user)
	if err != nil {
		return false, fmt.Errorf("list apple grants: %w", err)
	}
	replaced := false
	for _, g := range grants {
		if err := before(g); errors.Is(err, errKeepGrant) {
			continue
		} else if err != nil {
			return false, err
		}
		removed, err := s.d.AppleGrants.DeleteAppleGrant(ctx, g)
		if err != nil {
			return false, fmt.Errorf("delete apple grant: %w", err)
		}
		replaced = replaced || !removed
	}
	return replaced, nil
}

// revokeAppleGrant revokes one grant at Apple. A token that no longer opens is refused for good:
// no one can revoke with it.
func (s *Service) revokeAppleGrant(ctx context.Context, g domain.AppleGrant) error {
	if s.d.AppleTokens == nil {
		return errNoAppleClient
	}
	token, err := s.d.Cipher.Open(ctx, g.Binding(), g.RefreshToken)
	if err != nil {
		return fmt.Errorf("open apple refresh token: %w", err)
	}
	return s.d.AppleTokens.Revoke(ctx, g.ClientID, token)
}

// appleRetryable reports whether a failed revocation may succeed later: Apple's own answer when
// the error carries one (invalid_grant never will), else whether a dependency was unavailable.
func appleRetryable(err error) bool {
	if t, ok := errors.AsType[temporary](err); ok {
		return t.Temporary()
	}
	return domain.KindOf(err) == domain.KindUnavailable
}

// refusalReason names why a grant can never be revoked, for operators.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, errNoAppleClient):
		return "no_apple_client"
	case errors.Is(err, domain.ErrSealedSecretInvalid):
		return "unreadable"
	default:
		return "revoke_refused"
	}
}

// errNoAppleClient: the service runs without Apple client credentials (development only), so a
// grant cannot be revoked, now or later.
var errNoAppleClient = errors.New("no apple client configured")

// dropped reports a grant deleted without a revocation.
func (s *Service) dropped(g domain.AppleGrant, reason string, err error) {
	if s.d.AppleGrantDropped != nil {
		s.d.AppleGrantDropped(g.UserID, g.ClientID, reason, err)
	}
}

// RevokeAppleGrants revokes at Apple every Sign in with Apple authorization the account holds and
// deletes their refresh tokens, as an operator does when an account is compromised; the account
// and its sessions stay (revoke those separately). It reports how many grants it ended. A
// temporary failure at Apple stops it with domain.ErrUnavailable; running it again finishes.
func (s *Service) RevokeAppleGrants(ctx context.Context, user domain.UserID) (int, error) {
	return s.revokeAppleGrants(ctx, user, false)
}
