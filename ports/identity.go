package ports

import (
	"context"
	"time"

	"github.com/betterkey/backend/domain"
)

// UserStore keeps accounts. Implementations are safe for concurrent use.
type UserStore interface {
	// Create stores a new user; it returns domain.ErrConflict when a user with the same Apple
	// issuer and subject (or id) already exists.
	Create(ctx context.Context, u domain.User) error
	// Get returns domain.ErrNotFound when no user has the id.
	Get(ctx context.Context, id domain.UserID) (domain.User, error)
	// GetByApple returns domain.ErrNotFound when no user has the Apple issuer and subject.
	GetByApple(ctx context.Context, issuer, subject string) (domain.User, error)
	// Save overwrites the profile fields of an existing user; domain.ErrNotFound if it is gone.
	Save(ctx context.Context, u domain.User) error
	// MarkDeleting records that the user's erasure started at at, unless an earlier start is
	// recorded already; domain.ErrNotFound if the user is gone.
	MarkDeleting(ctx context.Context, id domain.UserID, at time.Time) error
	// Delete removes the user and, in the database through the schema's cascades, everything
	// the account owns (sessions, connections, vehicles, sealed secrets); domain.ErrNotFound if
	// there is no such user.
	Delete(ctx context.Context, id domain.UserID) error
}

// SessionStore keeps app sessions and the hashes of every refresh token they ever had, so a
// replayed, rotated token is recognised. Implementations are safe for concurrent use.
type SessionStore interface {
	// Create stores a new session; domain.ErrConflict if the id or refresh hash exists.
	Create(ctx context.Context, s domain.Session) error
	// Get returns domain.ErrNotFound when the session does not exist.
	Get(ctx context.Context, id domain.SessionID) (domain.Session, error)
	// ListByUser returns the user's sessions, newest first, revoked ones included. Only the data
	// export and operators read it; retention bounds it.
	ListByUser(ctx context.Context, user domain.UserID) ([]domain.Session, error)
	// ListLive returns up to limit of the user's sessions that are neither revoked nor idle
	// expired at now (domain.Session.Usable), newest first (ties by id, descending). It reads
	// only live rows, so its cost does not grow with the user's history.
	ListLive(ctx context.Context, user domain.UserID, now time.Time, limit int) ([]domain.Session, error)
	// FindByRefresh returns the id of the session whose current or any earlier refresh token has
	// the hash; domain.ErrNotFound when none has.
	FindByRefresh(ctx context.Context, h domain.TokenHash) (domain.SessionID, error)
	// Update runs fn on the session with its row locked against concurrent updates (across
	// processes) and saves the result when fn returns nil; when fn returns an error nothing is
	// written and that error is returned. A replaced refresh hash is remembered for FindByRefresh.
	// It returns domain.ErrNotFound when the session does not exist.
	Update(ctx context.Context, id domain.SessionID, fn func(*domain.Session) error) (domain.Session, error)
	// RevokeAllForUser revokes every active session of the user and reports how many it revoked.
	RevokeAllForUser(ctx context.Context, user domain.UserID, now time.Time, reason string) (int, error)
	// DeleteEnded deletes up to limit sessions that ended before before (revoked before it, or
	// unrevoked and idle expired before it) together with their rotated refresh hashes, and
	// reports how many sessions it deleted. Live sessions are never deleted.
	DeleteEnded(ctx context.Context, before time.Time, limit int) (int, error)
	// DeleteRotatedBefore forgets up to limit refresh hashes that were rotated away before
	// before (a session's LastUsedAt when it rotated) and reports how many; a session's current
	// hash is never forgotten.
	DeleteRotatedBefore(ctx context.Context, before time.Time, limit int) (int, error)
	// RevokeAllCreatedBefore revokes, at now, every active session of every user created before
	// before, in bounded batches so no transaction holds a large part of the table, and reports
	// how many it revoked.
	RevokeAllCreatedBefore(ctx context.Context, before, now time.Time, reason string) (int, error)
}

// NonceStore keeps sign-in nonces by hash until they are consumed or expire.
type NonceStore interface {
	// Put stores a nonce; domain.ErrConflict if the hash exists.
	Put(ctx context.Context, n domain.Nonce) error
	// Consume deletes the nonce atomically and returns domain.ErrNotFound when it does not exist,
	// was consumed already, or expired at now. Of two concurrent calls at most one succeeds.
	Consume(ctx context.Context, h domain.TokenHash, now time.Time) error
	// DeleteExpired removes nonces that expired before now and reports how many.
	DeleteExpired(ctx context.Context, now time.Time) (int, error)
}

// AppleVerifier checks Apple identity tokens: RS256 with a key from Apple's JWKS, issuer and
// audience allowlists, expiry with a small leeway, and a non-empty subject. It does not check the
// nonce; the use case does, because it owns the nonce store.
type AppleVerifier interface {
	// Verify returns the proven identity, domain.ErrInvalidIdentityToken (wrapped) for any token
	// that fails a check, or an unavailable error when Apple's keys cannot be had at all.
	Verify(ctx context.Context, identityToken string) (domain.AppleIdentity, error)
}

// AppleGrantStore keeps users' sealed Apple refresh tokens (domain.AppleGrant), one per user and
// client id, among the other secrets at rest so that key rotation covers them. Deleting the user
// deletes them. Implementations are safe for concurrent use.
type AppleGrantStore interface {
	// PutAppleGrant stores g, replacing the user's grant for the same client id (creation time
	// included: it is a new authorization); domain.ErrNotFound when the user does not exist.
	PutAppleGrant(ctx context.Context, g domain.AppleGrant) error
	// AppleGrants returns the user's grants ordered by client id; none is an empty list.
	AppleGrants(ctx context.Context, user domain.UserID) ([]domain.AppleGrant, error)
	// DeleteAppleGrant removes g only if the store still holds g's refresh token for its user and
	// client id, so a grant a newer sign-in stored is never lost; it reports whether it removed it.
	DeleteAppleGrant(ctx context.Context, g domain.AppleGrant) (bool, error)
}

// AppleTokens talks to Apple's token and revoke endpoints with the team's client secret. Apple's
// refresh token is what lets account deletion revoke the user's Sign in with Apple authorization
// (App Store guideline 5.1.1(v)).
type AppleTokens interface {
	// Exchange redeems a native app's authorization code issued to clientID (an allowlisted app
	// id). It verifies the id_token Apple answers with and returns its subject with Apple's
	// refresh token. A code Apple refuses is domain.ErrInvalidAuthorizationCode (wrapped); Apple
	// unreachable, slow or failing is domain.ErrUnavailable (wrapped).
	Exchange(ctx context.Context, clientID string, code domain.Secret) (AppleGrant, error)
	// Revoke invalidates a refresh token issued to clientID; a token Apple already considers
	// invalid is success. Failures are *domain.UpstreamError: Temporary when a retry may help.
	Revoke(ctx context.Context, clientID string, refreshToken domain.Secret) error
}

// AppleGrant is what an authorization code exchange yields.
type AppleGrant struct {
	// Subject is the Apple user id (sub) of the verified id_token.
	Subject string
	// RefreshToken is Apple's long-lived refresh token; it is sealed before it is stored.
	RefreshToken domain.Secret
}

// AccessClaims is what a BetterKey access token asserts.
type AccessClaims struct {
	UserID    domain.UserID
	SessionID domain.SessionID
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// AccessTokens issues and verifies the short-lived signed access tokens of app sessions.
type AccessTokens interface {
	// Issue signs claims into a token.
	Issue(c AccessClaims) (domain.Secret, error)
	// Verify checks signature, algorithm, issuer, audience and expiry; it returns
	// domain.ErrAccessTokenExpired for an expired but otherwise valid token and
	// domain.ErrInvalidAccessToken for everything else.
	Verify(token string, now time.Time) (AccessClaims, error)
}

// AccessKey is an access-token signing key in the clear, as only the signer holds it.
type AccessKey struct {
	ID       string
	Material domain.Secret
	// SignsFrom and VerifiesUntil are the key's window (domain.SigningKey); a zero VerifiesUntil
	// is open.
	SignsFrom, VerifiesUntil time.Time
}

// AccessKeyRing is the signer's side of key rotation: the stored keys, once any exists, replace
// the configured ones.
type AccessKeyRing interface {
	// ConfiguredKey is the key the configuration names. It signs while no key is stored, and a
	// first rotation stores it so that its tokens verify through the overlap.
	ConfiguredKey() AccessKey
	// UseKeys makes keys the whole set the signer signs and verifies with, each in its window.
	// While none was ever installed an empty set leaves the configured keys; after that it is
	// refused. It fails, keeping the previous set, when a key's material is not a valid key.
	UseKeys(keys []AccessKey) error
}

// SigningKeyStore keeps the access-token signing keys, shared by every replica. Implementations
// are safe for concurrent use.
type SigningKeyStore interface {
	// SigningKeys returns every stored key in the order they sign: by SignsFrom, then
	// CreatedAt, then ID.
	SigningKeys(ctx context.Context) ([]domain.SigningKey, error)
	// UpdateSigningKeys runs decide on the stored keys, under a lock that serialises updates
	// across replicas, and persists its result as the new set: keys missing from it are deleted,
	// the others inserted or their windows updated. An error from decide changes nothing.
	UpdateSigningKeys(ctx context.Context, decide func([]domain.SigningKey) ([]domain.SigningKey, error)) error
}
