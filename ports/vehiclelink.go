package ports

import (
	"context"
	"time"

	"github.com/betterkey/backend/domain"
)

// ConnectStateStore keeps pending Smartcar Connect flows by the hash of their state value, and
// the links their callbacks left for the owner's app to confirm by the hash of the link token.
// Implementations are safe for concurrent use.
type ConnectStateStore interface {
	// Put stores a state; domain.ErrConflict if the hash exists.
	Put(ctx context.Context, s domain.ConnectState) error
	// Consume deletes the state atomically and returns it; domain.ErrNotFound when it does not
	// exist, was consumed already, or expired at now. Of two concurrent calls at most one succeeds.
	Consume(ctx context.Context, h domain.TokenHash, now time.Time) (domain.ConnectState, error)
	// PutPendingLink stores a link awaiting confirmation; domain.ErrConflict if the hash exists.
	PutPendingLink(ctx context.Context, l domain.PendingLink) error
	// ConsumePendingLink deletes the link atomically and returns it; domain.ErrNotFound when it
	// does not exist, was consumed already, or expired at now (an expired link is deleted too).
	// Of two concurrent calls at most one succeeds.
	ConsumePendingLink(ctx context.Context, h domain.TokenHash, now time.Time) (domain.PendingLink, error)
	// DeleteExpired removes states and pending links that expired before now and reports how
	// many, both together.
	DeleteExpired(ctx context.Context, now time.Time) (int, error)
}

// ConnectionStore keeps Smartcar connections, their sealed token sets and their vehicles.
// Implementations are safe for concurrent use; Update is exclusive across processes, which is
// what makes a token refresh happen once per connection across all replicas.
type ConnectionStore interface {
	// SaveGrant stores a connection with its sealed tokens and its vehicles in one transaction.
	// When the user already has a connection for the same Smartcar user (c.ID must then be that
	// connection's id), its tokens, status, scopes and expiries are replaced, vehicles it did not
	// have are added and vehicles it had keep their ids. It returns the stored vehicles.
	SaveGrant(ctx context.Context, c domain.Connection, vehicles []domain.Vehicle) ([]domain.Vehicle, error)
	// BySmartcarUser returns the user's connection for a Smartcar user; domain.ErrNotFound if none.
	BySmartcarUser(ctx context.Context, user domain.UserID, smartcarUserID string) (domain.Connection, error)
	// Get returns a connection with its sealed tokens; domain.ErrNotFound if it does not exist.
	Get(ctx context.Context, id domain.ConnectionID) (domain.Connection, error)
	// Update runs fn on the connection with its row locked against every other Update (across
	// processes) and saves the result (tokens included) when fn returns nil; when fn returns an
	// error nothing is written and that error is returned. fn may call the vehicle API but must
	// not use the store. domain.ErrNotFound if the connection does not exist.
	Update(ctx context.Context, id domain.ConnectionID, fn func(*domain.Connection) error) (domain.Connection, error)
	// DueForRefresh returns ids of active connections whose refresh token expires before the
	// given time, oldest expiry first, at most limit.
	DueForRefresh(ctx context.Context, before time.Time, limit int) ([]domain.ConnectionID, error)
	// Vehicles lists the user's vehicles with link status and cached status, oldest first. It
	// reads no token material.
	Vehicles(ctx context.Context, user domain.UserID) ([]domain.VehicleView, error)
	// Vehicle returns one of the user's vehicles; another user's vehicle is domain.ErrNotFound.
	Vehicle(ctx context.Context, user domain.UserID, id domain.VehicleID) (domain.VehicleView, error)
	// DeleteVehicle removes one of the user's vehicles and, when it was the connection's last,
	// the connection and its sealed tokens too, in one transaction. It reports whether the
	// connection was removed; domain.ErrNotFound for a vehicle the user does not have.
	DeleteVehicle(ctx context.Context, user domain.UserID, id domain.VehicleID) (connectionRemoved bool, err error)
	// SaveStatus records a vehicle status unless a newer observation is stored already; it
	// reports whether it was recorded. domain.ErrNotFound if the vehicle does not exist.
	SaveStatus(ctx context.Context, s domain.VehicleStatus) (bool, error)
	// VehiclesBySmartcarID returns every stored vehicle with the Smartcar vehicle id, across
	// users, oldest first, with link status and cached status; with a non-empty smartcarUserID
	// only those linked through that Smartcar user's connections. Webhooks name vehicles this
	// way. It reads no token material; none found is an empty list.
	VehiclesBySmartcarID(ctx context.Context, smartcarVehicleID, smartcarUserID string) ([]domain.VehicleView, error)
}

// StoredSecret is one sealed secret at rest with the binding of the row that holds it; the
// rewrap job sees every secret this way, whatever table keeps it.
type StoredSecret struct {
	Binding domain.SecretBinding
	Sealed  domain.SealedSecret
}

// SealedSecretStore is the key-management view of every secret at rest. Implementations are safe
// for concurrent use.
type SealedSecretStore interface {
	// KeyVersionCounts reports how many stored secrets each key version protects.
	KeyVersionCounts(ctx context.Context) (map[int]int, error)
	// BelowVersion returns up to limit secrets sealed under a key version below version, ordered
	// by binding (purpose, user, connection), strictly after the binding after (zero: from the
	// start); a job that stops can resume from its last binding.
	BelowVersion(ctx context.Context, version int, after domain.SecretBinding, limit int) ([]StoredSecret, error)
	// Replace applies each swap as a compare-and-swap: the row with the swap's binding gets the
	// replacement only if it still holds old. It reports, swap by swap, whether it swapped (false
	// when a concurrent writer changed or deleted the row). An empty replacement, or two swaps of
	// one binding, is domain.ErrInvalid and nothing is swapped.
	Replace(ctx context.Context, swaps []SecretSwap) ([]bool, error)
}

// SecretSwap is one compare-and-swap of SealedSecretStore.Replace.
type SecretSwap struct {
	Binding          domain.SecretBinding
	Old, Replacement domain.SealedSecret
}

// CheckSwaps is the argument check every SealedSecretStore.Replace shares.
func CheckSwaps(swaps []SecretSwap) error {
	seen := make(map[domain.SecretBinding]struct{}, len(swaps))
	for _, x := range swaps {
		if x.Replacement.IsZero() {
			return domain.Invalid("replacement", "must not be empty")
		}
		if _, dup := seen[x.Binding]; dup {
			return domain.Invalid("binding", "must not repeat within one replace")
		}
		seen[x.Binding] = struct{}{}
	}
	return nil
}
