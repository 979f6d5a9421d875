// Package vehiclelink holds the vehicle-link use cases: Smartcar Connect (state, callback, code
// exchange), the connection's sealed token set with a refresh that runs once per connection across
// every replica, the vehicle list, the read-through lock status, and disconnect.
package vehiclelink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Config tunes the link.
type Config struct {
	// RefreshMargin is how long before its expiry an access token is treated as expired, so a
	// slow upstream call never starts with a token about to die.
	RefreshMargin time.Duration
	// StatusTTL is how long a stored lock status is served without asking the vehicle again.
	StatusTTL time.Duration
	// RenewWithin makes the background refresher renew a connection whose refresh token expires
	// within this window (refresh tokens last 60 days).
	RenewWithin time.Duration
}

func (c Config) withDefaults() Config {
	if c.RefreshMargin <= 0 {
		c.RefreshMargin = 2 * time.Minute
	}
	if c.StatusTTL <= 0 {
		c.StatusTTL = 30 * time.Second
	}
	if c.RenewWithin <= 0 {
		c.RenewWithin = 30 * 24 * time.Hour
	}
	return c
}

// Deps are the ports the link needs.
type Deps struct {
	States      ports.ConnectStateStore
	Connections ports.ConnectionStore
	API         ports.VehicleAPI
	Cipher      ports.TokenCipher
	// Refreshed hears the outcome of every token refresh attempt for metrics: RefreshRenewed,
	// RefreshShared, RefreshNeedsReauth, RefreshRevoked or RefreshFailed; nil means nobody listens.
	Refreshed func(outcome string)
}

// The outcomes Deps.Refreshed hears.
const (
	RefreshRenewed     = "renewed"      // a new token set came from the upstream and was stored
	RefreshShared      = "shared"       // another caller (maybe another replica) had just renewed it
	RefreshNeedsReauth = "needs_reauth" // the refresh token is dead; the owner must reconnect
	RefreshRevoked     = "revoked"      // consent was withdrawn
	RefreshFailed      = "failed"       // a temporary failure; nothing was written
)

// Service implements the vehicle-link use cases; safe for concurrent use, with every coordination
// point in the stores.
type Service struct {
	d   Deps
	cfg Config
	now func() time.Time
}

// New returns the service.
func New(d Deps, cfg Config) *Service {
	if d.Refreshed == nil {
		d.Refreshed = func(string) {}
	}
	return &Service{d: d, cfg: cfg.withDefaults(), now: time.Now}
}

// WithClock returns a copy reading time from now, for tests.
func (s *Service) WithClock(now func() time.Time) *Service {
	c := *s
	c.now = now
	return &c
}

// Vehicles lists the user's vehicles. It reads no token material and decrypts nothing.
func (s *Service) Vehicles(ctx context.Context, user domain.UserID) ([]domain.VehicleView, error) {
	v, err := s.d.Connections.Vehicles(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("list vehicles: %w", err)
	}
	return v, nil
}

// Vehicle returns one of the user's vehicles; others' vehicles are domain.ErrNotFound.
func (s *Service) Vehicle(ctx context.Context, user domain.UserID, id domain.VehicleID) (domain.VehicleView, error) {
	if !domain.ValidID(string(id)) {
		return domain.VehicleView{}, domain.ErrNotFound
	}
	v, err := s.d.Connections.Vehicle(ctx, user, id)
	if err != nil {
		return domain.VehicleView{}, fmt.Errorf("get vehicle: %w", err)
	}
	return v, nil
}

// open decrypts a connection's token set; a set that does not open is a broken row, not the
// user's fault, and is reported as such.
func (s *Service) open(ctx context.Context, c domain.Connection) (domain.TokenSet, error) {
	plain, err := s.d.Cipher.Open(ctx, c.TokenBinding(), c.Tokens)
	if err != nil {
		return domain.TokenSet{}, fmt.Errorf("open token set: %w", err)
	}
	t, err := domain.ParseTokenSet(plain)
	if err != nil {
		return domain.TokenSet{}, fmt.Errorf("open token set: %w", errors.Join(domain.ErrSealedSecretInvalid, err))
	}
	return t, nil
}

// seal encrypts a token set for the connection and records its expiries in clear.
func (s *Service) seal(ctx context.Context, c *domain.Connection, t domain.TokenSet) error {
	sealed, err := s.d.Cipher.Seal(ctx, c.TokenBinding(), t.Plaintext())
	if err != nil {
		return fmt.Errorf("seal token set: %w", err)
	}
	c.Tokens, c.AccessExpiresAt, c.RefreshExpiresAt = sealed, t.AccessExpiresAt, t.RefreshExpiresAt
	return nil
}
