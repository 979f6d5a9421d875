package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Connections is an in-memory ports.ConnectionStore. Token sets live in a SealedSecrets table
// under each connection's TokenBinding, never in the connection records, as in the database.
// One mutex serialises every call, which is what Update's cross-replica lock amounts to in a
// single process; fn runs under it, so it must not call the store.
type Connections struct {
	mu       sync.Mutex
	conns    map[domain.ConnectionID]domain.Connection // Tokens always zero here
	vehicles map[domain.VehicleID]vehicleEntry
	secrets  *SealedSecrets
}

// vehicleEntry is a stored vehicle with its cached status, nil until one is saved.
type vehicleEntry struct {
	v      domain.Vehicle
	status *domain.VehicleStatus
}

var _ ports.ConnectionStore = (*Connections)(nil)

// NewConnections returns an empty store keeping its token sets in secrets, which a test shares
// with the SealedSecretStore it hands to a rewrap job; nil gives the store a table of its own.
func NewConnections(secrets *SealedSecrets) *Connections {
	if secrets == nil {
		secrets = NewSealedSecrets()
	}
	return &Connections{
		conns:    map[domain.ConnectionID]domain.Connection{},
		vehicles: map[domain.VehicleID]vehicleEntry{},
		secrets:  secrets,
	}
}

// SaveGrant implements ports.ConnectionStore; it returns the given vehicles as stored, in the
// order given, with the ids of those the connection already had.
func (s *Connections) SaveGrant(_ context.Context, c domain.Connection, vehicles []domain.Vehicle) ([]domain.Vehicle, error) {
	if err := domain.ValidateGrant(c, vehicles); err != nil {
		return nil, fmt.Errorf("save grant: %w", err)
	}
	c = normConnection(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, found := s.bySmartcarUser(c.UserID, c.SmartcarUserID)
	switch {
	case found && cur.ID != c.ID:
		return nil, fmt.Errorf("save grant: the smartcar user is linked under another connection id: %w", domain.ErrConflict)
	case !found && s.conns[c.ID].ID != "":
		return nil, fmt.Errorf("save grant: connection id is taken: %w", domain.ErrConflict)
	case found:
		c.CreatedAt = cur.CreatedAt
	}
	had := map[string]domain.VehicleID{}
	for id, e := range s.vehicles {
		if e.v.ConnectionID == c.ID {
			had[e.v.SmartcarID] = id
		}
	}
	out := make([]domain.Vehicle, 0, len(vehicles))
	for _, v := range vehicles {
		v.UserID, v.ConnectionID, v.CreatedAt = c.UserID, c.ID, dbTime(v.CreatedAt)
		if id, ok := had[v.SmartcarID]; ok {
			v.ID, v.CreatedAt = id, s.vehicles[id].v.CreatedAt
		} else if _, taken := s.vehicles[v.ID]; taken {
			return nil, fmt.Errorf("save grant: vehicle id is taken: %w", domain.ErrConflict)
		}
		out = append(out, v)
	}
	for _, v := range out {
		e := s.vehicles[v.ID]
		e.v = v
		s.vehicles[v.ID] = e
	}
	s.store(c)
	return out, nil
}

// BySmartcarUser implements ports.ConnectionStore.
func (s *Connections) BySmartcarUser(_ context.Context, user domain.UserID, smartcarUserID string) (domain.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.bySmartcarUser(user, smartcarUserID)
	if !ok {
		return domain.Connection{}, fmt.Errorf("get connection by smartcar user: %w", domain.ErrNotFound)
	}
	return s.withTokens(c), nil
}

// Get implements ports.ConnectionStore.
func (s *Connections) Get(_ context.Context, id domain.ConnectionID) (domain.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conns[id]
	if !ok {
		return domain.Connection{}, fmt.Errorf("get connection: %w", domain.ErrNotFound)
	}
	return s.withTokens(c), nil
}

// Update implements ports.ConnectionStore. The id, owner, Smartcar user and creation time are
// fixed; a token set fn leaves as it found it is not written back, so a rewrap that replaced it
// meanwhile is kept; a token set fn clears is deleted.
func (s *Connections) Update(_ context.Context, id domain.ConnectionID, fn func(*domain.Connection) error) (domain.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.conns[id]
	if !ok {
		return domain.Connection{}, fmt.Errorf("update connection: %w", domain.ErrNotFound)
	}
	before := s.withTokens(old)
	next := cloneConnection(before)
	if err := fn(&next); err != nil {
		return domain.Connection{}, err
	}
	next.ID, next.UserID, next.SmartcarUserID, next.CreatedAt = old.ID, old.UserID, old.SmartcarUserID, old.CreatedAt
	if err := next.Validate(); err != nil {
		return domain.Connection{}, fmt.Errorf("update connection: %w", err)
	}
	next = normConnection(next)
	if next.Tokens.Ciphertext() == before.Tokens.Ciphertext() {
		s.conns[id] = withoutTokens(next)
		return cloneConnection(next), nil
	}
	s.store(next)
	return cloneConnection(next), nil
}

// DueForRefresh implements ports.ConnectionStore; ties on the expiry fall back to the id, as in
// the database.
func (s *Connections) DueForRefresh(_ context.Context, before time.Time, limit int) ([]domain.ConnectionID, error) {
	if limit <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []domain.Connection
	for _, c := range s.conns {
		if c.Status == domain.ConnectionActive && c.RefreshExpiresAt.Before(before) {
			due = append(due, c)
		}
	}
	slices.SortFunc(due, func(a, b domain.Connection) int {
		return cmp.Or(a.RefreshExpiresAt.Compare(b.RefreshExpiresAt), cmp.Compare(a.ID, b.ID))
	})
	ids := make([]domain.ConnectionID, 0, min(limit, len(due)))
	for _, c := range due[:min(limit, len(due))] {
		ids = append(ids, c.ID)
	}
	return ids, nil
}

// store keeps c's record and its token set; callers hold mu.
func (s *Connections) store(c domain.Connection) {
	s.secrets.put(c.TokenBinding(), c.Tokens)
	s.conns[c.ID] = withoutTokens(c)
}

// bySmartcarUser finds the user's connection for a Smartcar user; callers hold mu.
func (s *Connections) bySmartcarUser(user domain.UserID, smartcarUserID string) (domain.Connection, bool) {
	for _, c := range s.conns {
		if c.UserID == user && c.SmartcarUserID == smartcarUserID {
			return c, true
		}
	}
	return domain.Connection{}, false
}

// withTokens returns a copy of c with its token set read from the secrets table.
func (s *Connections) withTokens(c domain.Connection) domain.Connection {
	c = cloneConnection(c)
	c.Tokens = s.secrets.get(c.TokenBinding())
	return c
}

func withoutTokens(c domain.Connection) domain.Connection {
	c = cloneConnection(c)
	c.Tokens = domain.SealedSecret{}
	return c
}

// cloneConnection copies c so that callers never share its scope slice with the store.
func cloneConnection(c domain.Connection) domain.Connection {
	c.Scopes = slices.Clone(c.Scopes)
	return c
}

// normConnection gives c's times the database's form (UTC, whole microseconds) and an empty
// scope list the form a read returns (nil), so the fake hands back what a database would.
func normConnection(c domain.Connection) domain.Connection {
	c = cloneConnection(c)
	if len(c.Scopes) == 0 {
		c.Scopes = nil
	}
	c.AccessExpiresAt, c.RefreshExpiresAt = dbTime(c.AccessExpiresAt), dbTime(c.RefreshExpiresAt)
	c.CreatedAt, c.UpdatedAt, c.RefreshedAt = dbTime(c.CreatedAt), dbTime(c.UpdatedAt), dbTime(c.RefreshedAt)
	return c
}

// dbTime is the UTC, microsecond form every database store returns.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
