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
