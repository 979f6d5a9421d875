package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Input limits keep hostile requests cheap; real values are far smaller.
const (
	maxIdentityToken = 16 << 10
	maxNonce         = 256
	maxInstallID     = 128
	maxDeviceName    = 128
	maxAuthCode      = 1024
)

// IssueNonce creates a single-use sign-in nonce and returns its raw value, which exists only in
// the response.
func (s *Service) IssueNonce(ctx context.Context) (domain.Secret, time.Time, error) {
	raw := domain.NewOpaqueToken()
	exp := s.now().Add(domain.NonceTTL)
	if err := s.d.Nonces.Put(ctx, domain.Nonce{Hash: domain.HashToken(raw.Reveal()), ExpiresAt: exp}); err != nil {
		return domain.Secret{}, time.Time{}, fmt.Errorf("store nonce: %w", err)
	}
	return raw, exp, nil
}

// SignInInput is a Sign in with Apple request from the app.
type SignInInput struct {
	IdentityToken     domain.Secret
	Nonce             domain.Secret
	AuthorizationCode domain.Secret
	InstallID         string
	Device            string
	DeviceName        string
}

func (in SignInInput) validate() (domain.Device, error) {
	switch {
	case in.IdentityToken.Empty():
		return "", domain.Invalid("identity_token", "is required")
	case in.IdentityToken.Len() > maxIdentityToken:
		return "", fmt.Errorf("identity token of %d bytes: %w", in.IdentityToken.Len(), domain.ErrInvalidIdentityToken)
	case in.Nonce.Empty():
		return "", fmt.Errorf("no nonce: %w", domain.ErrInvalidNonce)
	case in.Nonce.Len() > maxNonce:
		return "", fmt.Errorf("nonce of %d bytes: %w", in.Nonce.Len(), domain.ErrInvalidNonce)
	case in.InstallID == "" || len(in.InstallID) > maxInstallID:
		return "", domain.Invalid("install_id", "is required and at most 128 characters")
	case in.AuthorizationCode.Len() > maxAuthCode:
		return "", fmt.Errorf("authorization code of %d bytes: %w", in.AuthorizationCode.Len(), domain.ErrInvalidAuthorizationCode)
	case len(in.DeviceName) > maxDeviceName:
		return "", domain.Invalid("device_name", "is at most 128 characters")
	}
	return domain.ParseDevice(in.Device)
}

// SignIn verifies an Apple identity token against a server-issued nonce and starts a session for
// this install. Every check runs before anything is written; a failed check creates nothing, and
// the nonce is consumed only by a token that passed every other check.
//
// An authorization code, when sent, is redeemed at Apple for the refresh token that account
// deletion revokes. A code Apple refuses, or one of another Apple account, fails the sign-in
// (401, nothing created). Apple or the cipher being unavailable does not: the session is created
// without the refresh token (Tokens.AppleGrant says so), because a user must not be locked out
// of their car over it, and the next sign-in brings a new code.
func (s *Service) SignIn(ctx context.Context, in SignInInput) (Tokens, error) {
	device, err := in.validate()
	if err != nil {
		return Tokens{}, err
	}
	id, err := s.d.Apple.Verify(ctx, in.IdentityToken.Reveal())
	if err != nil {
		return Tokens{}, fmt.Errorf("verify identity token: %w", err)
	}
	if id.NonceHash == "" || !domain.NonceMatches(id.NonceHash, in.Nonce.Reveal()) {
		return Tokens{}, fmt.Errorf("nonce does not match the token: %w", domain.ErrInvalidNonce)
	}
	now := s.now()
	if err := s.d.Nonces.Consume(ctx, domain.HashToken(in.Nonce.Reveal()), now); err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return Tokens{}, fmt.Errorf("consume nonce: %w", domain.ErrInvalidNonce)
		}
		return Tokens{}, fmt.Errorf("consume nonce: %w", err)
	}
	// An account being erased is refused before its code is redeemed, so no new Apple grant
	// starts on it; the check after findOrCreateUser catches an erasure that began meanwhile
	// (and is the only one a sign-in without a code needs).
	if !in.AuthorizationCode.Empty() && s.d.AppleTokens != nil {
		if u, err := s.d.Users.GetByApple(ctx, id.Issuer, id.Subject); err == nil && u.DeletionRequestedAt != nil {
			return Tokens{}, fmt.Errorf("sign in: %w", domain.ErrAccountDeletionPending)
		}
	}
	exchanged, grantErr := s.exchangeCode(ctx, id, in.AuthorizationCode)
	if errors.Is(grantErr, domain.ErrInvalidAuthorizationCode) {
		return Tokens{}, grantErr
	}
	user, err := s.findOrCreateUser(ctx, id, now)
	if err == nil && user.DeletionRequestedAt != nil {
		err = fmt.Errorf("sign in: %w", domain.ErrAccountDeletionPending)
	}
	if err != nil {
		s.abandonGrant(ctx, id.Audience, exchanged)
		return Tokens{}, err
	}
	if err := s.endInstallSessions(ctx, user.ID, in.InstallID, device, now); err != nil {
		return Tokens{}, err
	}
	refresh := domain.NewOpaqueToken()
	sess := domain.NewSession(user.ID, in.InstallID, device, in.DeviceName, domain.HashToken(refresh.Reveal()), now, s.cfg.Lifetimes)
	if err := s.d.Sessions.Create(ctx, sess); err != nil {
		return Tokens{}, fmt.Errorf("create session: %w", err)
	}
	tokens, err := s.issue(sess, refresh, now)
	if err != nil {
		return Tokens{}, err
	}
	switch {
	case grantErr != nil:
		tokens.AppleGrant, tokens.AppleGrantErr = AppleGrantNotStored, grantErr
	case !exchanged.RefreshToken.Empty():
		if err := s.keepAppleGrant(ctx, user.ID, id.Audience, exchanged.RefreshToken, now); err != nil {
			tokens.AppleGrant, tokens.AppleGrantErr = AppleGrantNotStored, err
		} else {
			tokens.AppleGrant = AppleGrantStored
		}
	}
	return tokens, nil
}

// exchangeCode redeems the sign-in's authorization code for the app the identity token was
// issued to, and checks that the grant is the same Apple account's: a code of another account
// would otherwise have this account revoke someone else's authorization on deletion.
func (s *Service) exchangeCode(ctx context.Context, id domain.AppleIdentity, code domain.Secret) (ports.AppleGrant, error) {
	if code.Empty() || s.d.AppleTokens == nil {
		return ports.AppleGrant{}, nil
	}
	g, err := s.d.AppleTokens.Exchange(ctx, id.Audience, code)
	if err != nil {
		return ports.AppleGrant{}, fmt.Errorf("exchange authorization code: %w", err)
	}
	if g.Subject != id.Subject {
		return ports.AppleGrant{}, fmt.Errorf("authorization code of another apple account: %w", domain.ErrInvalidAuthorizationCode)
	}
	return g, nil
}

// abandonGrant revokes, best effort, a grant just redeemed for a sign-in that then failed, so no
// authorization is left at Apple that no row of ours knows.
func (s *Service) abandonGrant(ctx context.Context, clientID string, g ports.AppleGrant) {
	if g.RefreshToken.Empty() {
		return
	}
	_ = s.d.AppleTokens.Revoke(context.WithoutCancel(ctx), clientID, g.RefreshToken)
}

// keepAppleGrant seals Apple's refresh token to its row and stores it, replacing the grant an
// earlier sign-in of the same app left. The earlier token is not revoked: revoking it would end
// the user's authorization of the app, and Apple would then tell us consent was revoked.
func (s *Service) keepAppleGrant(ctx context.Context, user domain.UserID, clientID string, token domain.Secret, now time.Time) error {
	g := domain.AppleGrant{UserID: user, ClientID: clientID, CreatedAt: now}
	sealed, err := s.d.Cipher.Seal(ctx, g.Binding(), token)
	if err != nil {
		return fmt.Errorf("seal apple refresh token: %w", err)
	}
	g.RefreshToken = sealed
	if err := s.d.AppleGrants.PutAppleGrant(ctx, g); err != nil {
		return fmt.Errorf("store apple grant: %w", err)
	}
	return nil
}

// findOrCreateUser tolerates two first sign-ins of one Apple account racing: the loser of the
// insert reads the winner's row.
func (s *Service) findOrCreateUser(ctx context.Context, id domain.AppleIdentity, now time.Time) (domain.User, error) {
	u, err := s.d.Users.GetByApple(ctx, id.Issuer, id.Subject)
	switch {
	case err == nil:
		if id.Email != "" && (u.Email != id.Email || u.IsPrivateEmail != id.IsPrivateEmail || u.EmailVerified != id.EmailVerified) {
			u.Refresh(id, now)
			if err := s.d.Users.Save(ctx, u); err != nil {
				return domain.User{}, fmt.Errorf("update user: %w", err)
			}
		}
		return u, nil
	case !errors.Is(err, domain.ErrNotFound):
		return domain.User{}, fmt.Errorf("find user: %w", err)
	}
	u = domain.NewUser(id, now)
	if err := s.d.Users.Create(ctx, u); err != nil {
		if !errors.Is(err, domain.ErrConflict) {
			return domain.User{}, fmt.Errorf("create user: %w", err)
		}
		if u, err = s.d.Users.GetByApple(ctx, id.Issuer, id.Subject); err != nil {
			return domain.User{}, fmt.Errorf("find user after conflict: %w", err)
		}
	}
	return u, nil
}

// endInstallSessions revokes what a new sign-in replaces (domain.SessionsEndedBySignIn): the
// earlier session of the same install and device, and the oldest ones beyond the account's
// limit. It reads only live sessions, so a user's history never slows their sign-in, and up to
// twice the limit of them: an account that went over it (two sign-ins racing at the limit, or
// sessions from before the limit existed) comes back under it instead of staying over for good.
func (s *Service) endInstallSessions(ctx context.Context, user domain.UserID, install string, device domain.Device, now time.Time) error {
	live, err := s.d.Sessions.ListLive(ctx, user, now, 2*domain.MaxLiveSessions)
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	for id, reason := range domain.SessionsEndedBySignIn(live, install, device) {
		if _, err := s.d.Sessions.Update(ctx, id, func(x *domain.Session) error {
			x.Revoke(now, reason)
			return nil
		}); err != nil {
			return fmt.Errorf("replace session: %w", err)
		}
	}
	return nil
}
