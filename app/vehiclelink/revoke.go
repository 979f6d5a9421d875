package vehiclelink

import (
	"context"
	"fmt"

	"github.com/betterkey/backend/domain"
)

// RevokeGrants ends the app's access to every vehicle of the user at Smartcar, as an operator
// does when an account is compromised: each vehicle of an active connection is disconnected
// upstream, then every connection is marked needs_reauth, so commands are refused and the owner
// must connect again. The vehicles stay listed, showing that. A connection already dead upstream
// is only marked. A temporary upstream failure stops the revocation with what it did counted;
// running it again finishes the rest (a vehicle Smartcar disconnected already answers as one
// that needs re-auth).
func (s *Service) RevokeGrants(ctx context.Context, user domain.UserID) (connections, vehicles int, err error) {
	list, err := s.d.Connections.Vehicles(ctx, user)
	if err != nil {
		return 0, 0, fmt.Errorf("list vehicles: %w", err)
	}
	var order []domain.ConnectionID
	byConnection := map[domain.ConnectionID][]domain.VehicleView{}
	for _, v := range list {
		if _, seen := byConnection[v.ConnectionID]; !seen {
			order = append(order, v.ConnectionID)
		}
		byConnection[v.ConnectionID] = append(byConnection[v.ConnectionID], v)
	}
	for _, id := range order {
		vs := byConnection[id]
		if vs[0].ConnectionStatus == domain.ConnectionActive {
			for _, v := range vs {
				if err := s.disconnectUpstream(ctx, v); err != nil {
					return connections, vehicles, err
				}
				vehicles++
			}
		}
		if err := s.mark(ctx, id, domain.ConnectionNeedsReauth); err != nil {
			return connections, vehicles, err
		}
		connections++
	}
	return connections, vehicles, nil
}
