package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// ConnectStates is an in-memory ports.ConnectStateStore.
type ConnectStates struct {
	mu    sync.Mutex
	m     map[domain.TokenHash]domain.ConnectState
	links map[domain.TokenHash]domain.PendingLink
}

var _ ports.ConnectStateStore = (*ConnectStates)(nil)

// NewConnectStates returns an empty store.
func NewConnectStates() *ConnectStates {
	return &ConnectStates{m: map[domain.TokenHash]domain.ConnectState{}, links: map[domain.TokenHash]domain.PendingLink{}}
}

// Put implements ports.ConnectStateStore.
func (s *ConnectStates) Put(_ context.Context, st domain.ConnectState) error {
	if !domain.ValidID(string(st.UserID)) {
		return fmt.Errorf("put connect state: %w", domain.Invalid("user_id", "must be a canonical uuid"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[st.Hash]; ok {
		return fmt.Errorf("put connect state: %w", domain.ErrConflict)
	}
	st.ExpiresAt = dbTime(st.ExpiresAt)
	s.m[st.Hash] = st
	return nil
}

// Consume implements ports.ConnectStateStore; an expired state is deleted as well, so it can
// never be consumed later with an earlier clock.
func (s *ConnectStates) Consume(_ context.Context, h domain.TokenHash, now time.Time) (domain.ConnectState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.m[h]
	if !ok {
		return domain.ConnectState{}, fmt.Errorf("consume connect state: %w", domain.ErrNotFound)
	}
	delete(s.m, h)
	if !now.Before(st.ExpiresAt) {
		return domain.ConnectState{}, fmt.Errorf("consume connect state: expired: %w", domain.ErrNotFound)
	}
	return st, nil
}

// PutPendingLink implements ports.ConnectStateStore.
func (s *ConnectStates) PutPendingLink(_ context.Context, l domain.PendingLink) error {
	if !domain.ValidID(string(l.UserID)) {
		return fmt.Errorf("put pending link: %w", domain.Invalid("user_id", "must be a canonical uuid"))
	}
	if l.Code.IsZero() {
		return fmt.Errorf("put pending link: %w", domain.Invalid("code", "must not be empty"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.links[l.Hash]; ok {
		return fmt.Errorf("put pending link: %w", domain.ErrConflict)
	}
	l.ExpiresAt = dbTime(l.ExpiresAt)
	s.links[l.Hash] = l
	return nil
}

// ConsumePendingLink implements ports.ConnectStateStore; like Consume, an expired link is
// deleted as well.
func (s *ConnectStates) ConsumePendingLink(_ context.Context, h domain.TokenHash, now time.Time) (domain.PendingLink, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.links[h]
	if !ok {
		return domain.PendingLink{}, fmt.Errorf("consume pending link: %w", domain.ErrNotFound)
	}
	delete(s.links, h)
	if !now.Before(l.ExpiresAt) {
		return domain.PendingLink{}, fmt.Errorf("consume pending link: expired: %w", domain.ErrNotFound)
	}
	return l, nil
}

// DeleteExpired implements ports.ConnectStateStore.
func (s *ConnectStates) DeleteExpired(_ context.Context, now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for h, st := range s.m {
		if st.ExpiresAt.Before(now) {
			delete(s.m, h)
			n++
		}
	}
	for h, l := range s.links {
		if l.ExpiresAt.Before(now) {
			delete(s.links, h)
			n++
		}
	}
	return n, nil
}
