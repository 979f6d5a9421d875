// Package identity holds the sign-in and session use cases: nonces, Sign in with Apple, refresh
// token rotation with reuse detection, sign-out, and per-request authentication.
package identity

import (
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Config tunes session lifetimes.
type Config struct {
	Lifetimes domain.SessionLifetimes
}

// Deps are the ports the identity use cases need.
type Deps struct {
	Users    ports.UserStore
	Sessions ports.SessionStore
	Nonces   ports.NonceStore
	Apple    ports.AppleVerifier
	Tokens   ports.AccessTokens
	// AppleTokens, AppleGrants and Cipher keep Apple's refresh token from the authorization code
	// a sign-in brings, so account deletion can revoke it. Without AppleTokens a code is ignored.
	AppleTokens ports.AppleTokens
	AppleGrants ports.AppleGrantStore
	Cipher      ports.TokenCipher
}

// Service implements the identity use cases. It is safe for concurrent use; all coordination lives
// in the stores, so any number of replicas may run it.
type Service struct {
	d   Deps
	cfg Config
	now func() time.Time
}

// New returns the identity service; zero lifetimes take the SPEC defaults.
func New(d Deps, cfg Config) *Service {
	if cfg.Lifetimes == (domain.SessionLifetimes{}) {
		cfg.Lifetimes = domain.DefaultSessionLifetimes()
	}
	return &Service{d: d, cfg: cfg, now: time.Now}
}

// WithClock returns a copy of the service that reads time from now; tests use it to step past
// expiries without sleeping.
func (s *Service) WithClock(now func() time.Time) *Service {
	c := *s
	c.now = now
	return &c
}

// Tokens is what a successful sign-in or refresh hands the app.
type Tokens struct {
	AccessToken           domain.Secret
	AccessTokenExpiresAt  time.Time
	RefreshToken          domain.Secret
	RefreshTokenExpiresAt time.Time
	UserID                domain.UserID
	SessionID             domain.SessionID
	// AppleGrant says what became of the sign-in's authorization code.
	AppleGrant AppleGrantOutcome
	// AppleGrantErr is why the code's refresh token was not kept, when AppleGrant is
	// AppleGrantNotStored; the sign-in succeeded regardless.
	AppleGrantErr error
}

// AppleGrantOutcome is what became of a sign-in's authorization code.
type AppleGrantOutcome string

// The outcomes of a sign-in's authorization code.
const (
	AppleGrantNone      AppleGrantOutcome = ""           // no code was sent, or exchange is off
	AppleGrantStored    AppleGrantOutcome = "stored"     // Apple's refresh token is sealed and stored
	AppleGrantNotStored AppleGrantOutcome = "not_stored" // Apple or the cipher failed; a later sign-in brings a new code
)

// Principal is the authenticated caller of a request.
type Principal struct {
	UserID    domain.UserID
	SessionID domain.SessionID
}

func (s *Service) issue(sess domain.Session, refresh domain.Secret, now time.Time) (Tokens, error) {
	exp := now.Add(s.cfg.Lifetimes.Access)
	access, err := s.d.Tokens.Issue(ports.AccessClaims{UserID: sess.UserID, SessionID: sess.ID, IssuedAt: now, ExpiresAt: exp})
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{
		AccessToken: access, AccessTokenExpiresAt: exp,
		RefreshToken: refresh, RefreshTokenExpiresAt: sess.IdleExpiresAt,
		UserID: sess.UserID, SessionID: sess.ID,
	}, nil
}
