package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// AppleGrants is an in-memory ports.AppleGrantStore. The refresh tokens live in the shared
// SealedSecrets table, as in the database, so a rewrap through that store is what a later read
// returns.
type AppleGrants struct {
	secrets *SealedSecrets
	users   *Users

	mu      sync.Mutex
	created map[domain.SecretBinding]time.Time
}

var _ ports.AppleGrantStore = (*AppleGrants)(nil)

// NewAppleGrants returns a store over secrets whose grants must belong to users in users.
func NewAppleGrants(secrets *SealedSecrets, users *Users) *AppleGrants {
	return &AppleGrants{secrets: secrets, users: users, created: map[domain.SecretBinding]time.Time{}}
}

// PutAppleGrant implements ports.AppleGrantStore.
func (s *AppleGrants) PutAppleGrant(ctx context.Context, g domain.AppleGrant) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("put apple grant: %w", err)
	}
	if _, err := s.users.Get(ctx, g.UserID); err != nil {
		return fmt.Errorf("put apple grant: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := g.Binding()
	s.created[b] = g.CreatedAt
	s.secrets.put(b, g.RefreshToken)
	return nil
}

// AppleGrants implements ports.AppleGrantStore.
func (s *AppleGrants) AppleGrants(_ context.Context, user domain.UserID) ([]domain.AppleGrant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []domain.AppleGrant{}
	for b, at := range s.created {
		if b.UserID != user {
			continue
		}
		v := s.secrets.get(b)
		if v.IsZero() {
			delete(s.created, b) // removed with its user
			continue
		}
		out = append(out, domain.AppleGrant{UserID: user, ClientID: b.ConnectionID, RefreshToken: v, CreatedAt: at})
	}
	slices.SortFunc(out, func(a, b domain.AppleGrant) int { return strings.Compare(a.ClientID, b.ClientID) })
	return out, nil
}

// DeleteAppleGrant implements ports.AppleGrantStore.
func (s *AppleGrants) DeleteAppleGrant(_ context.Context, g domain.AppleGrant) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := g.Binding()
	cur := s.secrets.get(b)
	if cur.IsZero() || g.RefreshToken.IsZero() || cur.Ciphertext() != g.RefreshToken.Ciphertext() {
		return false, nil
	}
	s.secrets.remove(b)
	delete(s.created, b)
	return true, nil
}
