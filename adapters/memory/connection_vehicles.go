package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/betterkey/backend/domain"
)

// Vehicles implements ports.ConnectionStore; ties on the creation time fall back to the id, as in
// the database.
func (s *Connections) Vehicles(_ context.Context, user domain.UserID) ([]domain.VehicleView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []domain.VehicleView
	for _, e := range s.vehicles {
		if e.v.UserID == user {
			out = append(out, s.view(e))
		}
	}
	slices.SortFunc(out, func(a, b domain.VehicleView) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Vehicle implements ports.ConnectionStore.
func (s *Connections) Vehicle(_ context.Context, user domain.UserID, id domain.VehicleID) (domain.VehicleView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.vehicles[id]
	if !ok || e.v.UserID != user {
		return domain.VehicleView{}, fmt.Errorf("get vehicle: %w", domain.ErrNotFound)
	}
	return s.view(e), nil
}

// DeleteVehicle implements ports.ConnectionStore.
func (s *Connections) DeleteVehicle(_ context.Context, user domain.UserID, id domain.VehicleID) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.vehicles[id]
	if !ok || e.v.UserID != user {
		return false, fmt.Errorf("delete vehicle: %w", domain.ErrNotFound)
	}
	delete(s.vehicles, id)
	for _, other := range s.vehicles {
		if other.v.ConnectionID == e.v.ConnectionID {
			return false, nil
		}
	}
	if c, ok := s.conns[e.v.ConnectionID]; ok {
		s.secrets.remove(c.TokenBinding())
		delete(s.conns, c.ID)
	}
	return true, nil
}

// SaveStatus implements ports.ConnectionStore: an observation replaces the stored one only when it
// is strictly newer, so a late webhook never overwrites a fresher live read.
func (s *Connections) SaveStatus(_ context.Context, st domain.VehicleStatus) (bool, error) {
	if st.ObservedAt.IsZero() {
		return false, fmt.Errorf("save vehicle status: %w", domain.Invalid("status.observed_at", "must be set"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.vehicles[st.VehicleID]
	if !ok {
		return false, fmt.Errorf("save vehicle status: %w", domain.ErrNotFound)
	}
	st = cloneStatus(st)
	st.ObservedAt, st.FetchedAt = dbTime(st.ObservedAt), dbTime(st.FetchedAt)
	if !st.Supersedes(e.status) {
		return false, nil
	}
	e.status = &st
	s.vehicles[st.VehicleID] = e
	return true, nil
}

// VehiclesBySmartcarID implements ports.ConnectionStore, in the database's order.
func (s *Connections) VehiclesBySmartcarID(_ context.Context, smartcarVehicleID, smartcarUserID string) ([]domain.VehicleView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []domain.VehicleView
	for _, e := range s.vehicles {
		if e.v.SmartcarID != smartcarVehicleID || smartcarVehicleID == "" {
			continue
		}
		if smartcarUserID != "" && s.conns[e.v.ConnectionID].SmartcarUserID != smartcarUserID {
			continue
		}
		out = append(out, s.view(e))
	}
	slices.SortFunc(out, func(a, b domain.VehicleView) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// view joins a vehicle with its connection's status and scopes; callers hold mu.
func (s *Connections) view(e vehicleEntry) domain.VehicleView {
	c := s.conns[e.v.ConnectionID]
	out := domain.VehicleView{Vehicle: e.v, ConnectionStatus: c.Status, Scopes: slices.Clone(c.Scopes)}
	if e.status != nil {
		st := cloneStatus(*e.status)
		out.Status = &st
	}
	return out
}

// cloneStatus copies st so that callers never share its pointer and slices with the store; empty
// opening lists become nil, the form a database read returns.
func cloneStatus(st domain.VehicleStatus) domain.VehicleStatus {
	if st.Locked != nil {
		l := *st.Locked
		st.Locked = &l
	}
	st.Doors, st.Windows = cloneOpenings(st.Doors), cloneOpenings(st.Windows)
	return st
}

func cloneOpenings(o []domain.Opening) []domain.Opening {
	if len(o) == 0 {
		return nil
	}
	return slices.Clone(o)
}
