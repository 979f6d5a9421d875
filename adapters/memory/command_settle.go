package memory

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

var _ ports.CommandSettler = (*Commands)(nil)

// SettleUnknown implements ports.CommandSettler, oldest command first as in the database.
func (s *Commands) SettleUnknown(_ context.Context, vehicle domain.VehicleID, locked bool, observedAt, now time.Time) ([]domain.Command, error) {
	now = dbTime(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []domain.Command
	for id, c := range s.commands {
		if c.VehicleID != vehicle || !c.Settle(locked, observedAt, now) {
			continue
		}
		s.commands[id] = c
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b domain.Command) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}
