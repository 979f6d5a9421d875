// Package account holds the use cases of the account as a whole: its erasure (the owner's
// DELETE /v1/me and Apple's account-delete notification) and the owner's data export. It
// composes the identity, vehicle-link and command stores; it owns no data of its own.
package account

import (
	"context"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Disconnector removes one of a user's vehicles the way the owner would (at Smartcar first, then
// here, connection and token set with the last vehicle); the vehicle-link service is one.
type Disconnector interface {
	Disconnect(ctx context.Context, user domain.UserID, id domain.VehicleID) error
}

// Deps are the ports the account use cases need.
type Deps struct {
	Users       ports.UserStore
	Sessions    ports.SessionStore
	Connections ports.ConnectionStore
	Commands    ports.CommandStore
	Vehicles    Disconnector
	// AppleGrants, Cipher and AppleTokens revoke the Sign in with Apple authorizations the
	// account holds; without AppleTokens the grants are only deleted.
	AppleGrants ports.AppleGrantStore
	Cipher      ports.TokenCipher
	AppleTokens ports.AppleTokens
	// AppleGrantDropped, if set, hears of every Apple grant deleted without being revoked at
	// Apple (reason "revoke_refused", "unreadable", "no_apple_client" or "forced"), which
	// operators must see.
	AppleGrantDropped func(user domain.UserID, clientID, reason string, err error)
}

// Service implements the account use cases. It is safe for concurrent use; every step it takes
// is idempotent, so concurrent or repeated deletions of one account converge.
type Service struct {
	d   Deps
	now func() time.Time
}

// New returns the service.
func New(d Deps) *Service {
	return &Service{d: d, now: time.Now}
}

// WithClock returns a copy reading time from now, for tests.
func (s *Service) WithClock(now func() time.Time) *Service {
	c := *s
	c.now = now
	return &c
}
