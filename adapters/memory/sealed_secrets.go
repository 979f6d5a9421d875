package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// SealedSecrets is an in-memory ports.SealedSecretStore and the fakes' one table of secrets at
// rest, as sealed_secrets is in the database: Connections keeps its token sets here, so a rewrap
// that replaces a value through this store is what the connection store reads next, exactly as
// with the real adapters.
type SealedSecrets struct {
	mu sync.Mutex
	m  map[domain.SecretBinding]domain.SealedSecret
}

var _ ports.SealedSecretStore = (*SealedSecrets)(nil)

// NewSealedSecrets returns an empty table.
func NewSealedSecrets() *SealedSecrets {
	return &SealedSecrets{m: map[domain.SecretBinding]domain.SealedSecret{}}
}

// KeyVersionCounts implements ports.SealedSecretStore.
func (s *SealedSecrets) KeyVersionCounts(_ context.Context) (map[int]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int]int{}
	for _, v := range s.m {
		out[v.KeyVersion()]++
	}
	return out, nil
}

// BelowVersion implements ports.SealedSecretStore with the database's order: purpose, user id and
// connection id compared byte by byte.
func (s *SealedSecrets) BelowVersion(_ context.Context, version int, after domain.SecretBinding, limit int) ([]ports.StoredSecret, error) {
	if limit <= 0 {
		return nil, nil
	}
	if after.UserID != "" && !domain.ValidID(string(after.UserID)) {
		return nil, fmt.Errorf("list sealed secrets: %w", domain.Invalid("after.user_id", "must be a canonical uuid"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ports.StoredSecret
	for b, v := range s.m {
		if v.KeyVersion() < version && domain.CompareBindings(b, after) > 0 {
			out = append(out, ports.StoredSecret{Binding: b, Sealed: v})
		}
	}
	slices.SortFunc(out, func(a, b ports.StoredSecret) int { return domain.CompareBindings(a.Binding, b.Binding) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Replace implements ports.SealedSecretStore as compare-and-swaps on the stored ciphertext,
// all under one lock.
func (s *SealedSecrets) Replace(_ context.Context, swaps []ports.SecretSwap) ([]bool, error) {
	if err := ports.CheckSwaps(swaps); err != nil {
		return nil, fmt.Errorf("replace sealed secrets: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]bool, len(swaps))
	for i, x := range swaps {
		cur, ok := s.m[x.Binding]
		if ok && !x.Old.IsZero() && cur.Ciphertext() == x.Old.Ciphertext() {
			s.m[x.Binding] = x.Replacement
			out[i] = true
		}
	}
	return out, nil
}

// get returns the secret stored under b, the zero value when there is none.
func (s *SealedSecrets) get(b domain.SecretBinding) domain.SealedSecret {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[b]
}

// put stores v under b; a zero v removes the row, since an empty ciphertext must never stand in
// for a secret.
func (s *SealedSecrets) put(b domain.SecretBinding, v domain.SealedSecret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v.IsZero() {
		delete(s.m, b)
		return
	}
	s.m[b] = v
}

// remove deletes the row under b, if any.
func (s *SealedSecrets) remove(b domain.SecretBinding) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, b)
}
