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
	st.ExpiresAt = dbTime(st.ExpiresAt)
	s.mu.Lock()
	defer s.mu.Unlock()
	return putNew(s.m, st.Hash, st, "connect state")
}

// Consume implements ports.ConnectStateStore; an expired state is deleted as well, so it can
// never be consumed later with an earlier clock.
func (s *ConnectStates) Consume(_ context.Context, h domain.TokenHash, now time.Time) (domain.ConnectState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return takeUnexpired(s.m, h, now, func(st domain.ConnectState) time.Time { return st.ExpiresAt }, "connect state")
}

// PutPendingLink implements ports.ConnectStateStore.
func (s *ConnectStates) PutPendingLink(_ context.Context, l domain.PendingLink) error {
	if !domain.ValidID(string(l.UserID)) {
		return fmt.Errorf("put pending link: %w", domain.Invalid("user_id", "must be a canonical uuid"))
	}
	if l.Code.IsZero() {
		return fmt.Errorf("put pending link: %w", domain.Invalid("code", "must not be empty"))
	}
	l.ExpiresAt = dbTime(l.ExpiresAt)
	s.mu.Lock()
	defer s.mu.Unlock()
	return putNew(s.links, l.Hash, l, "pending link")
}

// ConsumePendingLink implements ports.ConnectStateStore; like Consume, an expired link is
// deleted as well.
func (s *ConnectStates) ConsumePendingLink(_ context.Context, h domain.TokenHash, now time.Time) (domain.PendingLink, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return takeUnexpired(s.links, h, now, func(l domain.PendingLink) time.Time { return l.ExpiresAt }, "pending link")
}

// putNew stores v under h unless h is taken: the hashes are of fresh random values, so a taken
// one is a conflict, never an overwrite.
func putNew[T any](m map[domain.TokenHash]T, h domain.TokenHash, v T, what string) error {
	if _, ok := m[h]; ok {
		return fmt.Errorf("put %s: %w", what, domain.ErrConflict)
	}
	m[h] = v
	return nil
}

// takeUnexpired removes h from m and returns its value unless it has expired at now; an expired
// value is removed too, so it can never be taken later with an earlier clock.
func takeUnexpired[T any](m map[domain.TokenHash]T, h domain.TokenHash, now time.Time, expiresAt func(T) time.Time, what string) (T, error) {
	var none T
	v, ok := m[h]
	if !ok {
		return none, fmt.Errorf("consume %s: %w", what, domain.ErrNotFound)
	}
	delete(m, h)
	if !now.Before(expiresAt(v)) {
		return none, fmt.Errorf("consume %s: expired: %w", what, domain.ErrNotFound)
	}
	return v, nil
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
