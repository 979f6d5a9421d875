// Package sessionkeys rotates the key that signs access tokens, across every replica: a rotation
// stores a new random key (sealed at rest like every other secret) that every replica loads and
// verifies before any replica signs with it, and the keys it replaces keep verifying the tokens
// they signed for an overlap window. The admin API and betterkeyctl drive it; each replica reloads
// the stored keys on a short period.
package sessionkeys

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Deps are what the rotation needs.
type Deps struct {
	Store  ports.SigningKeyStore
	Cipher ports.TokenCipher
	Ring   ports.AccessKeyRing
	// Reload is how often each replica reloads the stored keys. A new key signs only after
	// twice that (plus the access tokens' clock leeway), so that every replica has it first.
	Reload time.Duration
	// AccessTTL is the access tokens' lifetime, the default overlap: no token is cut short.
	AccessTTL time.Duration
	Now       func() time.Time
}

// clockLeeway covers clock skew between replicas, as the access-token verifier does.
const clockLeeway = 5 * time.Second

// Service implements the rotation use cases. It is safe for concurrent use.
type Service struct {
	d Deps

	mu     sync.Mutex
	opened map[string]opened // by kid: material already opened, so a reload costs no cipher call
}

type opened struct {
	ciphertext string
	material   domain.Secret
}

// New returns the rotation service.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Service{d: d, opened: map[string]opened{}}
}

// Key is a signing key as operators see it: never its material.
type Key struct {
	ID            string
	State         domain.SigningKeyState
	SignsFrom     time.Time
	VerifiesUntil time.Time // zero: open
	CreatedAt     time.Time
}

// DefaultOverlap is the overlap a rotation gets when the operator names none.
func (s *Service) DefaultOverlap() time.Duration { return s.d.AccessTTL }

// Propagation is how long a new key waits before it signs.
func (s *Service) Propagation() time.Duration { return 2*s.d.Reload + clockLeeway }

// Rotate adds a fresh key that signs after the propagation delay; the keys before it verify
// their tokens for overlap after that (0 is the emergency rotation of a leaked key: its tokens
// stop verifying as soon as the new key signs, and every app refreshes once). The first rotation
// also stores the configured key, so that the tokens it signed verify through the overlap. It
// returns the new key's id and every key after the rotation, and installs them on this replica
// at once.
func (s *Service) Rotate(ctx context.Context, overlap time.Duration) (string, []Key, error) {
	now := s.d.Now()
	if _, err := domain.PlanSigningKeyRotation(now, s.Propagation(), overlap); err != nil {
		return "", nil, fmt.Errorf("rotate session signing key: %w", err)
	}
	cur, err := s.d.Store.SigningKeys(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("rotate session signing key: %w", err)
	}
	// Seal before the store's lock is taken: the cipher may be a network call away.
	var seed domain.SigningKey
	if len(cur) == 0 {
		conf := s.d.Ring.ConfiguredKey()
		if seed.Sealed, err = s.d.Cipher.Seal(ctx, domain.SigningKeyBinding(conf.ID), conf.Material); err != nil {
			return "", nil, fmt.Errorf("rotate session signing key: seal the configured key: %w", err)
		}
		seed.ID, seed.SignsFrom, seed.CreatedAt = conf.ID, time.Unix(0, 0).UTC(), now
	}
	next := domain.SigningKey{ID: domain.NewSigningKeyID(), CreatedAt: now}
	if next.Sealed, err = s.d.Cipher.Seal(ctx, domain.SigningKeyBinding(next.ID), domain.NewSigningKeyMaterial()); err != nil {
		return "", nil, fmt.Errorf("rotate session signing key: seal: %w", err)
	}
	var after []domain.SigningKey
	err = s.d.Store.UpdateSigningKeys(ctx, func(keys []domain.SigningKey) ([]domain.SigningKey, error) {
		// Planned under the store's lock, not before the seals and the wait for it: the
		// propagation delay counts from when the key is stored.
		at := s.d.Now()
		plan, err := domain.PlanSigningKeyRotation(at, s.Propagation(), overlap)
		if err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			if seed.ID == "" { // a concurrent rotation cannot empty the set; this is a bug
				return nil, fmt.Errorf("the stored keys vanished during the rotation")
			}
			keys = []domain.SigningKey{seed}
		}
		after = plan.Rotate(keys, next, at)
		return after, nil
	})
	if err != nil {
		return "", nil, fmt.Errorf("rotate session signing key: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.install(ctx, after); err != nil {
		return "", nil, fmt.Errorf("rotate session signing key: stored, but not installed here (the next reload retries): %w", err)
	}
	return next.ID, view(after, s.d.Now()), nil
}

// Keys lists the stored keys, oldest first, with their state now.
func (s *Service) Keys(ctx context.Context) ([]Key, error) {
	keys, err := s.d.Store.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list session signing keys: %w", err)
	}
	return view(keys, s.d.Now()), nil
}

// Reload installs the stored keys on this replica's signer. The read and the install happen
// under one lock, so a read from before a rotation never lands after that rotation's install. On
// failure the signer keeps the keys it had; a key replaced meanwhile then keeps verifying here
// until a reload succeeds (its window is not yet capped in this replica's copy).
func (s *Service) Reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys, err := s.d.Store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("reload session signing keys: %w", err)
	}
	if err := s.install(ctx, keys); err != nil {
		return fmt.Errorf("reload session signing keys: %w", err)
	}
	return nil
}

// install puts keys on the signer; s.mu is held.
func (s *Service) install(ctx context.Context, keys []domain.SigningKey) error {
	now := s.d.Now()
	ring := make([]ports.AccessKey, 0, len(keys))
	seen := make(map[string]opened, len(keys))
	for _, k := range keys {
		if !k.VerifiesAt(now) {
			continue // retired: its material is not needed in memory
		}
		o, ok := s.opened[k.ID]
		if !ok || o.ciphertext != k.Sealed.Ciphertext() {
			m, err := s.d.Cipher.Open(ctx, domain.SigningKeyBinding(k.ID), k.Sealed)
			if err != nil {
				return fmt.Errorf("open key %s: %w", k.ID, err)
			}
			o = opened{ciphertext: k.Sealed.Ciphertext(), material: m}
		}
		seen[k.ID] = o
		ring = append(ring, ports.AccessKey{ID: k.ID, Material: o.material, SignsFrom: k.SignsFrom, VerifiesUntil: k.VerifiesUntil})
	}
	if len(ring) == 0 && len(keys) > 0 {
		// Never fall back to the configured key once keys are stored: it may be the leaked one.
		return fmt.Errorf("no stored key verifies at %s", now.Format(time.RFC3339))
	}
	if err := s.d.Ring.UseKeys(ring); err != nil {
		return err
	}
	s.opened = seen
	return nil
}

func view(keys []domain.SigningKey, now time.Time) []Key {
	states := domain.SigningKeyStates(keys, now)
	out := make([]Key, len(keys))
	for i, k := range keys {
		out[i] = Key{ID: k.ID, State: states[i], SignsFrom: k.SignsFrom, VerifiesUntil: k.VerifiesUntil, CreatedAt: k.CreatedAt}
	}
	return out
}
