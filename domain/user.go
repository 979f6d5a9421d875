package domain

import "time"

// User is a BetterKey account. It is keyed by the Apple (issuer, subject) pair, never by email:
// Apple relay addresses change and may be absent.
type User struct {
	ID             UserID
	AppleIssuer    string
	AppleSubject   string
	Email          string // may be empty; never used as an identifier
	EmailVerified  bool
	IsPrivateEmail bool
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// DeletionRequestedAt is set when the account's erasure starts and stays until it is done;
	// such an account cannot be signed in to.
	DeletionRequestedAt *time.Time
}

// AppleIdentity is what a verified Apple identity token (or server notification) proves.
type AppleIdentity struct {
	Issuer         string
	Subject        string
	Audience       string
	Email          string
	EmailVerified  bool
	IsPrivateEmail bool
	NonceHash      string // the token's nonce claim: lowercase hex SHA-256 of the raw nonce
	IssuedAt       time.Time
	ExpiresAt      time.Time
}

// NewUser creates the account for a first sign-in.
func NewUser(id AppleIdentity, now time.Time) User {
	u := User{ID: NewUserID(), AppleIssuer: id.Issuer, AppleSubject: id.Subject, CreatedAt: now, UpdatedAt: now}
	u.Refresh(id, now)
	return u
}

// Refresh copies the profile claims of a later sign-in; an empty email in a later token (Apple
// sends it inconsistently) does not erase the one we have.
func (u *User) Refresh(id AppleIdentity, now time.Time) {
	if id.Email != "" {
		u.Email = id.Email
		u.EmailVerified = id.EmailVerified
		u.IsPrivateEmail = id.IsPrivateEmail
	}
	u.UpdatedAt = now
}

// PurposeAppleRefreshToken is the binding purpose of a sealed Apple refresh token.
const PurposeAppleRefreshToken = "apple.refresh_token"

// AppleGrant is the user's Sign in with Apple authorization of one app (bundle id) as this
// service holds it: Apple's refresh token, sealed, kept only so that account deletion can revoke
// the authorization at Apple (App Store guideline 5.1.1(v)). A user has at most one per client
// id; the phone and the watch app each have their own.
type AppleGrant struct {
	UserID       UserID
	ClientID     string
	RefreshToken SealedSecret
	CreatedAt    time.Time
}

// Binding is the binding the refresh token is sealed under; the client id takes the place a
// connection id has for Smartcar tokens.
func (g AppleGrant) Binding() SecretBinding {
	return SecretBinding{Purpose: PurposeAppleRefreshToken, UserID: g.UserID, ConnectionID: g.ClientID}
}

// Validate refuses a grant that cannot be stored: no owner, no client id, nothing sealed.
func (g AppleGrant) Validate() error {
	switch {
	case g.UserID == "":
		return Invalid("apple_grant.user_id", "must not be empty")
	case g.ClientID == "":
		return Invalid("apple_grant.client_id", "must not be empty")
	case g.RefreshToken.IsZero():
		return Invalid("apple_grant.refresh_token", "must not be empty")
	}
	return nil
}

// ErasureForce says which upstreams an account erasure may go ahead without, after its caller
// has tried long enough: erasure must not wait on an upstream forever, but each upstream gets
// the patience its duty deserves.
type ErasureForce struct {
	// Vehicles deletes vehicle connections that Smartcar could not be told about.
	Vehicles bool
	// Apple deletes Sign in with Apple grants that Apple could not revoke.
	Apple bool
}
