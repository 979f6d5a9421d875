package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/betterkey/backend/domain"
)

// Users is an in-memory ports.UserStore.
type Users struct {
	mu   sync.Mutex
	byID map[domain.UserID]domain.User
}

// NewUsers returns an empty store.
func NewUsers() *Users { return &Users{byID: map[domain.UserID]domain.User{}} }

// Create implements ports.UserStore.
func (s *Users) Create(_ context.Context, u domain.User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[u.ID]; ok {
		return fmt.Errorf("create user: %w", domain.ErrConflict)
	}
	for _, x := range s.byID {
		if x.AppleIssuer == u.AppleIssuer && x.AppleSubject == u.AppleSubject {
			return fmt.Errorf("create user: %w", domain.ErrConflict)
		}
	}
	s.byID[u.ID] = u
	return nil
}

// Get implements ports.UserStore.
func (s *Users) Get(_ context.Context, id domain.UserID) (domain.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.byID[id]
	if !ok {
		return domain.User{}, fmt.Errorf("get user: %w", domain.ErrNotFound)
	}
	return u, nil
}

// GetByApple implements ports.UserStore.
func (s *Users) GetByApple(_ context.Context, issuer, subject string) (domain.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.byID {
		if u.AppleIssuer == issuer && u.AppleSubject == subject {
			return u, nil
		}
	}
	return domain.User{}, fmt.Errorf("get user by apple subject: %w", domain.ErrNotFound)
}

// Save implements ports.UserStore.
func (s *Users) Save(_ context.Context, u domain.User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.byID[u.ID]
	if !ok {
		return fmt.Errorf("save user: %w", domain.ErrNotFound)
	}
	u.AppleIssuer, u.AppleSubject, u.CreatedAt, u.DeletionRequestedAt = old.AppleIssuer, old.AppleSubject, old.CreatedAt, old.DeletionRequestedAt
	s.byID[u.ID] = u
	return nil
}

// MarkDeleting implements ports.UserStore.
func (s *Users) MarkDeleting(_ context.Context, id domain.UserID, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.byID[id]
	if !ok {
		return fmt.Errorf("mark user deleting: %w", domain.ErrNotFound)
	}
	if u.DeletionRequestedAt == nil {
		t := dbTime(at)
		u.DeletionRequestedAt = &t
		s.byID[id] = u
	}
	return nil
}

// Delete implements ports.UserStore. The fakes have no foreign keys: a test that wants the
// account's sessions or connections gone removes them through their own stores, as the use case
// does before it deletes the user.
func (s *Users) Delete(_ context.Context, id domain.UserID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[id]; !ok {
		return fmt.Errorf("delete user: %w", domain.ErrNotFound)
	}
	delete(s.byID, id)
	return nil
}
