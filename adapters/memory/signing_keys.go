package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// SigningKeys is an in-memory ports.SigningKeyStore. The keys' sealed material lives in the
// shared SealedSecrets table under each key's binding, so a rewrap through that table reaches
// the signing keys, as it does with the database.
type SigningKeys struct {
	mu      sync.Mutex // serialises updates, like the database's lock
	secrets *SealedSecrets
	keys    []domain.SigningKey // windows only; Sealed is read from secrets
}

var _ ports.SigningKeyStore = (*SigningKeys)(nil)

// NewSigningKeys returns an empty store keeping its material in secrets.
func NewSigningKeys(secrets *SealedSecrets) *SigningKeys { return &SigningKeys{secrets: secrets} }

// SigningKeys implements ports.SigningKeyStore.
func (s *SigningKeys) SigningKeys(_ context.Context) ([]domain.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.load(), nil
}

func (s *SigningKeys) load() []domain.SigningKey {
	out := make([]domain.SigningKey, len(s.keys))
	for i, k := range s.keys {
		k.Sealed = s.secrets.get(domain.SigningKeyBinding(k.ID))
		out[i] = k
	}
	slices.SortFunc(out, func(a, b domain.SigningKey) int {
		return cmp.Or(a.SignsFrom.Compare(b.SignsFrom), a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// UpdateSigningKeys implements ports.SigningKeyStore.
func (s *SigningKeys) UpdateSigningKeys(_ context.Context, decide func([]domain.SigningKey) ([]domain.SigningKey, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.load()
	next, err := decide(cur)
	if err != nil {
		return err
	}
	ids := make(map[string]bool, len(next))
	for _, k := range next {
		if k.ID == "" || k.Sealed.IsZero() {
			return fmt.Errorf("update signing keys: %w", domain.Invalid("key", "needs an id and sealed material"))
		}
		ids[k.ID] = true
	}
	had := make(map[string]bool, len(cur))
	for _, k := range cur {
		had[k.ID] = true
		if !ids[k.ID] {
			s.secrets.remove(domain.SigningKeyBinding(k.ID))
		}
	}
	s.keys = s.keys[:0]
	for _, k := range next {
		if !had[k.ID] { // an existing key's material changes only by rewrap
			s.secrets.put(domain.SigningKeyBinding(k.ID), k.Sealed)
		}
		k.Sealed = domain.SealedSecret{}
		s.keys = append(s.keys, k)
	}
	return nil
}
