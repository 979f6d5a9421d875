package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/betterkey/backend/domain"
)

// Sessions is an in-memory ports.SessionStore.
type Sessions struct {
	mu      sync.Mutex
	byID    map[domain.SessionID]domain.Session
	refresh map[domain.TokenHash]domain.SessionID // current and rotated hashes
	rotated map[domain.TokenHash]time.Time        // when each rotated hash was rotated away
}

// NewSessions returns an empty store.
func NewSessions() *Sessions {
	return &Sessions{byID: map[domain.SessionID]domain.Session{}, refresh: map[domain.TokenHash]domain.SessionID{},
		rotated: map[domain.TokenHash]time.Time{}}
}

// Create implements ports.SessionStore.
func (s *Sessions) Create(_ context.Context, x domain.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[x.ID]; ok {
		return fmt.Errorf("create session: %w", domain.ErrConflict)
	}
	if _, ok := s.refresh[x.RefreshHash]; ok {
		return fmt.Errorf("create session: %w", domain.ErrConflict)
	}
	s.byID[x.ID] = clone(x)
	s.refresh[x.RefreshHash] = x.ID
	return nil
}

// Get implements ports.SessionStore.
func (s *Sessions) Get(_ context.Context, id domain.SessionID) (domain.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.byID[id]
	if !ok {
		return domain.Session{}, fmt.Errorf("get session: %w", domain.ErrNotFound)
	}
	return clone(x), nil
}

// ListByUser implements ports.SessionStore.
func (s *Sessions) ListByUser(_ context.Context, user domain.UserID) ([]domain.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []domain.Session
	for _, x := range s.byID {
		if x.UserID == user {
			out = append(out, clone(x))
		}
	}
	slices.SortFunc(out, func(a, b domain.Session) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return compareStrings(string(b.ID), string(a.ID))
	})
	return out, nil
}

// ListLive implements ports.SessionStore.
func (s *Sessions) ListLive(ctx context.Context, user domain.UserID, now time.Time, limit int) ([]domain.Session, error) {
	all, err := s.ListByUser(ctx, user)
	if err != nil || limit <= 0 {
		return nil, err
	}
	live := slices.DeleteFunc(all, func(x domain.Session) bool { return x.Usable(now) != nil })
	return live[:min(limit, len(live))], nil
}

// FindByRefresh implements ports.SessionStore.
func (s *Sessions) FindByRefresh(_ context.Context, h domain.TokenHash) (domain.SessionID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.refresh[h]
	if !ok {
		return "", fmt.Errorf("find session by refresh token: %w", domain.ErrNotFound)
	}
	return id, nil
}

// Update implements ports.SessionStore.
func (s *Sessions) Update(_ context.Context, id domain.SessionID, fn func(*domain.Session) error) (domain.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.byID[id]
	if !ok {
		return domain.Session{}, fmt.Errorf("update session: %w", domain.ErrNotFound)
	}
	x := clone(old)
	if err := fn(&x); err != nil {
		return domain.Session{}, err
	}
	x.ID, x.UserID, x.CreatedAt = old.ID, old.UserID, old.CreatedAt
	if x.RefreshHash != old.RefreshHash {
		if _, taken := s.refresh[x.RefreshHash]; taken {
			return domain.Session{}, fmt.Errorf("update session: %w", domain.ErrConflict)
		}
		s.refresh[x.RefreshHash] = id
		s.rotated[old.RefreshHash] = x.LastUsedAt
	}
	s.byID[id] = clone(x)
	return x, nil
}

// RevokeAllForUser implements ports.SessionStore.
func (s *Sessions) RevokeAllForUser(_ context.Context, user domain.UserID, now time.Time, reason string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, x := range s.byID {
		if x.UserID != user || x.RevokedAt != nil {
			continue
		}
		x.Revoke(now, reason)
		s.byID[id] = x
		n++
	}
	return n, nil
}

// RevokeAllCreatedBefore implements ports.SessionStore.
func (s *Sessions) RevokeAllCreatedBefore(_ context.Context, before, now time.Time, reason string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, x := range s.byID {
		if x.RevokedAt != nil || !x.CreatedAt.Before(before) {
			continue
		}
		x.Revoke(now, reason)
		s.byID[id] = x
		n++
	}
	return n, nil
}

// DeleteEnded implements ports.SessionStore.
func (s *Sessions) DeleteEnded(_ context.Context, before time.Time, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gone := map[domain.SessionID]bool{}
	for id, x := range s.byID {
		if len(gone) >= limit {
			break
		}
		if (x.RevokedAt != nil && x.RevokedAt.Before(before)) || (x.RevokedAt == nil && x.IdleExpiresAt.Before(before)) {
			gone[id] = true
			delete(s.byID, id)
		}
	}
	for h, id := range s.refresh {
		if gone[id] {
			delete(s.refresh, h)
			delete(s.rotated, h)
		}
	}
	return len(gone), nil
}

// DeleteRotatedBefore implements ports.SessionStore.
func (s *Sessions) DeleteRotatedBefore(_ context.Context, before time.Time, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for h, at := range s.rotated {
		if n >= limit {
			break
		}
		if at.Before(before) {
			delete(s.rotated, h)
			delete(s.refresh, h)
			n++
		}
	}
	return n, nil
}

// clone copies the session so callers never share the RevokedAt pointer with the store.
func clone(x domain.Session) domain.Session {
	if x.RevokedAt != nil {
		t := *x.RevokedAt
		x.RevokedAt = &t
	}
	return x
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
