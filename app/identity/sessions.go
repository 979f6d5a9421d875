package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/betterkey/backend/domain"
)

// Authenticate checks an access token and then the session behind it, so a revoked session is
// refused at once even while its access tokens have not expired.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (Principal, error) {
	now := s.now()
	c, err := s.d.Tokens.Verify(accessToken, now)
	if err != nil {
		return Principal{}, err
	}
	sess, err := s.d.Sessions.Get(ctx, c.SessionID)
	if err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return Principal{}, fmt.Errorf("session of access token: %w", domain.ErrSessionRevoked)
		}
		return Principal{}, fmt.Errorf("load session: %w", err)
	}
	if sess.UserID != c.UserID {
		return Principal{}, fmt.Errorf("session owner differs from token: %w", domain.ErrInvalidAccessToken)
	}
	if err := sess.Usable(now); err != nil {
		return Principal{}, err
	}
	return Principal{UserID: c.UserID, SessionID: c.SessionID}, nil
}

// SignOut revokes the caller's current session.
func (s *Service) SignOut(ctx context.Context, p Principal) error {
	return s.RevokeSession(ctx, p.UserID, p.SessionID, domain.RevokeSignOut)
}

// RevokeSession revokes one session of the user; another user's session is domain.ErrNotFound, so
// session ids cannot be probed.
func (s *Service) RevokeSession(ctx context.Context, user domain.UserID, id domain.SessionID, reason string) error {
	now := s.now()
	_, err := s.d.Sessions.Update(ctx, id, func(x *domain.Session) error {
		if x.UserID != user {
			return domain.ErrNotFound
		}
		x.Revoke(now, reason)
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

// RevokeAllSessions revokes every active session of the user and reports how many.
func (s *Service) RevokeAllSessions(ctx context.Context, user domain.UserID, reason string) (int, error) {
	n, err := s.d.Sessions.RevokeAllForUser(ctx, user, s.now(), reason)
	if err != nil {
		return 0, fmt.Errorf("revoke sessions: %w", err)
	}
	return n, nil
}

// RevokeEverySession revokes every active session of every account, for an emergency such as a
// leaked signing key: each app must sign in again, and the next request of every session is
// refused at once (Authenticate reads the session row). Sessions started after the call stand.
func (s *Service) RevokeEverySession(ctx context.Context) (int, error) {
	now := s.now()
	n, err := s.d.Sessions.RevokeAllCreatedBefore(ctx, now, now, domain.RevokeEmergency)
	if err != nil {
		return n, fmt.Errorf("revoke every session: %w", err)
	}
	return n, nil
}

// Sessions lists the user's sessions, newest first.
func (s *Service) Sessions(ctx context.Context, user domain.UserID) ([]domain.Session, error) {
	list, err := s.d.Sessions.ListByUser(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return list, nil
}

// LiveSessions returns the user's sessions that can still be used; revoked and expired ones are
// history, not something the user can act on.
func (s *Service) LiveSessions(ctx context.Context, user domain.UserID) ([]domain.Session, error) {
	list, err := s.d.Sessions.ListLive(ctx, user, s.now(), domain.MaxLiveSessions)
	if err != nil {
		return nil, fmt.Errorf("list live sessions: %w", err)
	}
	return list, nil
}

// User returns an account.
func (s *Service) User(ctx context.Context, id domain.UserID) (domain.User, error) {
	u, err := s.d.Users.Get(ctx, id)
	if err != nil {
		return domain.User{}, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

// UserByApple returns the account of an Apple subject; support tools look users up this way.
func (s *Service) UserByApple(ctx context.Context, issuer, subject string) (domain.User, error) {
	u, err := s.d.Users.GetByApple(ctx, issuer, subject)
	if err != nil {
		return domain.User{}, fmt.Errorf("get user by apple subject: %w", err)
	}
	return u, nil
}

// SweepNonces deletes nonces that expired unused; a background job calls it so that abandoned
// sign-ins do not accumulate.
func (s *Service) SweepNonces(ctx context.Context) (int, error) {
	n, err := s.d.Nonces.DeleteExpired(ctx, s.now())
	if err != nil {
		return 0, fmt.Errorf("sweep nonces: %w", err)
	}
	return n, nil
}
