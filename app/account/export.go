package account

import (
	"context"
	"fmt"

	"github.com/betterkey/backend/domain"
)

// exportPage is how many commands one store call of the export reads.
const exportPage = 500

// Export is everything the product holds about an account that the owner may take away (SPEC
// §3, data export). It carries the domain records; the transport chooses the fields it shows,
// and shows no token, token hash, ciphertext or upstream identifier.
type Export struct {
	User     domain.User
	Sessions []domain.Session // newest first, revoked and expired ones included
	Vehicles []domain.VehicleView
	// Commands is the whole lock and unlock history, newest first, that of vehicles since
	// disconnected included.
	Commands []domain.Command
}

// Export gathers the account's data. The parts are read one after another, not as one
// snapshot; a command admitted meanwhile may or may not be in it.
func (s *Service) Export(ctx context.Context, user domain.UserID) (Export, error) {
	u, err := s.d.Users.Get(ctx, user)
	if err != nil {
		return Export{}, fmt.Errorf("get user: %w", err)
	}
	sessions, err := s.d.Sessions.ListByUser(ctx, user)
	if err != nil {
		return Export{}, fmt.Errorf("list sessions: %w", err)
	}
	vehicles, err := s.d.Connections.Vehicles(ctx, user)
	if err != nil {
		return Export{}, fmt.Errorf("list vehicles: %w", err)
	}
	var commands []domain.Command
	var before domain.CommandID
	for {
		page, err := s.d.Commands.UserHistory(ctx, user, before, exportPage)
		if err != nil {
			return Export{}, fmt.Errorf("list commands: %w", err)
		}
		commands = append(commands, page...)
		if len(page) < exportPage {
			break
		}
		before = page[len(page)-1].ID
	}
	return Export{User: u, Sessions: sessions, Vehicles: vehicles, Commands: commands}, nil
}
