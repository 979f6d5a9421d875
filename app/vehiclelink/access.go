package vehiclelink

import (
	"context"
	"errors"
	"fmt"

	"github.com/betterkey/backend/domain"
)

// errKeepCurrent ends a locked update without writing: another caller refreshed already.
var errKeepCurrent = errors.New("token set already fresh")

// WithAccess runs fn with a usable grant of the connection. For an API that authenticates as the
// user (v2), an access token that is about to expire is refreshed first, and one the upstream
// rejects anyway is refreshed once and fn retried. For one that authenticates as the application
// (v3), fn gets the Smartcar user id alone and no token is opened or refreshed. A dead grant marks
// the connection needs_reauth or revoked. Other modules (commands) use this so that every
// upstream call goes through one discipline.
func (s *Service) WithAccess(ctx context.Context, id domain.ConnectionID, fn func(domain.VehicleGrant) error) error {
	conn, err := s.d.Connections.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("get connection: %w", err)
	}
	if err := conn.Usable(); err != nil {
		return err
	}
	if !s.d.API.UserTokens() {
		// No refresh can help an application-authenticated call: a dead grant is marked as it is.
		err := fn(domain.VehicleGrant{SmartcarUserID: conn.SmartcarUserID})
		if domain.RequiresReconnect(err) {
			return errors.Join(err, s.markFor(ctx, id, err))
		}
		return err
	}
	tokens, err := s.open(ctx, conn)
	if err != nil {
		return err
	}
	grant := func(t domain.TokenSet) domain.VehicleGrant {
		return domain.VehicleGrant{SmartcarUserID: conn.SmartcarUserID, Access: t.AccessToken}
	}
	refreshed := false
	if !tokens.AccessValidAt(s.now(), s.cfg.RefreshMargin) {
		if tokens, err = s.refresh(ctx, id, tokens); err != nil {
			return err
		}
		refreshed = true
	}
	err = fn(grant(tokens))
	if errors.Is(err, domain.ErrReauthRequired) && !refreshed {
		// The upstream rejected a token our clock still trusts (revoked or rotated early):
		// refresh once, then retry.
		if tokens, err = s.refresh(ctx, id, tokens); err != nil {
			return err
		}
		err = fn(grant(tokens))
	}
	if errors.Is(err, domain.ErrConsentRevoked) {
		return errors.Join(err, s.mark(ctx, id, domain.ConnectionRevoked))
	}
	return err
}

// refresh replaces the connection's token set under the connection's row lock, which every
// replica takes, so one refresh reaches the upstream however many requests need it. After the lock
// it re-reads the set: when someone else replaced the token the caller saw, it uses theirs. The new
// set is sealed and stored before it is used; a refresh token the upstream refuses marks the
// connection for re-authentication.
func (s *Service) refresh(ctx context.Context, id domain.ConnectionID, seen domain.TokenSet) (domain.TokenSet, error) {
	var (
		fresh   domain.TokenSet
		outcome error
	)
	_, err := s.d.Connections.Update(ctx, id, func(c *domain.Connection) error {
		fresh, outcome = domain.TokenSet{}, nil
		if err := c.Usable(); err != nil {
			return err
		}
		cur, err := s.open(ctx, *c)
		if err != nil {
			return err
		}
		if cur.AccessToken.Reveal() != seen.AccessToken.Reveal() && cur.AccessValidAt(s.now(), 0) {
			fresh = cur
			return errKeepCurrent
		}
		next, err := s.d.API.Refresh(ctx, cur.RefreshToken)
		if c.MarkFor(err, s.now()) {
			outcome = err
			return nil // the mark must be saved
		}
		if err != nil {
			return err
		}
		if err := s.seal(ctx, c, next); err != nil {
			return err
		}
		c.UpdatedAt, c.RefreshedAt = s.now(), s.now()
		fresh = next
		return nil
	})
	switch {
	case errors.Is(err, errKeepCurrent):
		s.d.Refreshed(RefreshShared)
		return fresh, nil
	case err != nil:
		s.d.Refreshed(RefreshFailed)
		return domain.TokenSet{}, fmt.Errorf("refresh connection tokens: %w", err)
	case outcome != nil:
		if errors.Is(outcome, domain.ErrConsentRevoked) {
			s.d.Refreshed(RefreshRevoked)
		} else {
			s.d.Refreshed(RefreshNeedsReauth)
		}
		return domain.TokenSet{}, fmt.Errorf("refresh connection tokens: %w", outcome)
	}
	s.d.Refreshed(RefreshRenewed)
	return fresh, nil
}

// mark records a connection status learnt from the upstream.
func (s *Service) mark(ctx context.Context, id domain.ConnectionID, status domain.ConnectionStatus) error {
	return s.update(ctx, id, string(status), func(c *domain.Connection) bool { return c.Mark(status, s.now()) })
}

// markFor records the status an upstream refusal proves (domain.Connection.MarkFor).
func (s *Service) markFor(ctx context.Context, id domain.ConnectionID, cause error) error {
	return s.update(ctx, id, "after refusal", func(c *domain.Connection) bool { return c.MarkFor(cause, s.now()) })
}

// update applies a mark under the connection's row lock and writes only when it changed something.
func (s *Service) update(ctx context.Context, id domain.ConnectionID, what string, apply func(*domain.Connection) bool) error {
	_, err := s.d.Connections.Update(ctx, id, func(c *domain.Connection) error {
		if !apply(c) {
			return errUnmarked
		}
		return nil
	})
	if err != nil && !errors.Is(err, errUnmarked) {
		return fmt.Errorf("mark connection %s: %w", what, err)
	}
	return nil
}

// errUnmarked ends a connection update whose mark changes nothing (domain.Connection.Mark).
var errUnmarked = errors.New("connection status unchanged")

// RenewDue refreshes active connections whose refresh token expires within the renewal window,
// at most limit per call, so no connection falls off Smartcar's 60-day cliff while its owner is
// away. It returns how many it renewed; failures of single connections are counted, not fatal.
//
// An API that authenticates as the application (v3) never reads the user tokens, so there is
// nothing to renew: renewing anyway could only mark a working connection needs_reauth.
func (s *Service) RenewDue(ctx context.Context, limit int) (renewed, failed int, err error) {
	if !s.d.API.UserTokens() {
		return 0, 0, nil
	}
	ids, err := s.d.Connections.DueForRefresh(ctx, s.now().Add(s.cfg.RenewWithin), limit)
	if err != nil {
		return 0, 0, fmt.Errorf("find connections due for renewal: %w", err)
	}
	for _, id := range ids {
		conn, err := s.d.Connections.Get(ctx, id)
		if err != nil {
			failed++
			continue
		}
		tokens, err := s.open(ctx, conn)
		if err == nil {
			// Passing the current set forces the refresh unless another replica just renewed it.
			_, err = s.refresh(ctx, id, tokens)
		}
		if err != nil {
			failed++
			continue
		}
		renewed++
	}
	return renewed, failed, nil
}
