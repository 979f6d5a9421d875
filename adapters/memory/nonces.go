package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/betterkey/backend/domain"
)

// Nonces is an in-memory ports.NonceStore.
type Nonces struct {
	mu sync.Mutex
	m  map[domain.TokenHash]time.Time
}

// NewNonces returns an empty store.
func NewNonces() *Nonces { return &Nonces{m: map[domain.TokenHash]time.Time{}} }

// Put implements ports.NonceStore.
func (s *Nonces) Put(_ context.Context, n domain.Nonce) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[n.Hash]; ok {
		return fmt.Errorf("put nonce: %w", domain.ErrConflict)
	}
	s.m[n.Hash] = n.ExpiresAt
	return nil
}

// Consume implements ports.NonceStore.
func (s *Nonces) Consume(_ context.Context, h domain.TokenHash, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.m[h]
	if !ok {
		return fmt.Errorf("consume nonce: %w", domain.ErrNotFound)
	}
	delete(s.m, h)
	if !now.Before(exp) {
		return fmt.Errorf("consume nonce: expired: %w", domain.ErrNotFound)
	}
	return nil
}

// DeleteExpired implements ports.NonceStore.
func (s *Nonces) DeleteExpired(_ context.Context, now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for h, exp := range s.m {
		if exp.Before(now) {
			delete(s.m, h)
			n++
		}
	}
	return n, nil
}
