package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/betterkey/backend/domain"
)

const maxRefreshToken = 256

// Refresh rotates a session's refresh token in one locked update. Presenting a token that was
// already rotated away revokes the whole session (RFC 9700 §4.14.2): either the app or a thief
// holds a copy, and we cannot tell which. Of two parallel refreshes of one token exactly one wins;
// the other is a reuse.
func (s *Service) Refresh(ctx context.Context, token domain.Secret) (Tokens, error) {
	if token.Empty() || token.Len() > maxRefreshToken {
		return Tokens{}, domain.ErrInvalidRefreshToken
	}
	presented := domain.HashToken(token.Reveal())
	id, err := s.d.Sessions.FindByRefresh(ctx, presented)
	if err != nil {
		return Tokens{}, refreshError(err)
	}
	now := s.now()
	next := domain.NewOpaqueToken()
	var outcome error
	sess, err := s.d.Sessions.Update(ctx, id, func(x *domain.Session) error {
		outcome = nil
		if err := x.Usable(now); err != nil {
			return err
		}
		if !x.RefreshHash.Equal(presented) {
			x.Revoke(now, domain.RevokeRefreshReuse)
			outcome = domain.ErrRefreshTokenReused
			return nil // the revocation must be saved
		}
		x.Rotate(domain.HashToken(next.Reveal()), now, s.cfg.Lifetimes)
		return nil
	})
	if err != nil {
		return Tokens{}, refreshError(err)
	}
	if outcome != nil {
		return Tokens{}, outcome
	}
	return s.issue(sess, next, now)
}

func refreshError(err error) error {
	if errors.Is(err, domain.ErrNotFound) {
		return fmt.Errorf("find session: %w", domain.ErrInvalidRefreshToken)
	}
	return fmt.Errorf("rotate refresh token: %w", err)
}
