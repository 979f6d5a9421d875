package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/domain"
)

// benchVehicleOwners is how many users the vehicle-list benchmark spreads its reads over; each
// has two linked cars, one with a cached status, the usual shape of GET /v1/vehicles.
const benchVehicleOwners = 256

// BenchmarkVehicles measures the store call behind GET /v1/vehicles: one query joining a user's
// vehicles, their connections and the cached status. Run with -bench Vehicles/PostgreSQL; ops/s
// is in the reads/s column.
func BenchmarkVehicles(b *testing.B) {
	for _, e := range engines() {
		b.Run(e.name, func(b *testing.B) {
			db := e.open(b)
			conns := postgres.NewConnections(db)
			owners := make([]domain.UserID, benchVehicleOwners)
			for i := range owners {
				u, err := seedVehicleOwner(b.Context(), db, conns, "sc-1", "sc-2")
				if err != nil {
					b.Fatal(err)
				}
				owners[i] = u
			}
			var next atomic.Int64
			runParallel(b, "reads/s", func(ctx context.Context) (func() error, error) {
				user := owners[int(next.Add(1))%len(owners)]
				return func() error {
					vs, err := conns.Vehicles(ctx, user)
					if err == nil && len(vs) != 2 {
						err = fmt.Errorf("listed %d vehicles, want 2", len(vs))
					}
					return err
				}, nil
			})
		})
	}
}

// seedVehicleOwner stores a user with one connection of two vehicles with the given Smartcar ids,
// the first with a status.
func seedVehicleOwner(ctx context.Context, db *postgres.DB, conns *postgres.Connections, smartcarIDs ...string) (domain.UserID, error) {
	at := time.Now()
	u := domain.NewUser(domain.AppleIdentity{Issuer: "iss", Subject: domain.NewOpaqueToken().Reveal()}, at)
	if err := postgres.NewUsers(db).Create(ctx, u); err != nil {
		return "", err
	}
	tokens, err := domain.ParseSealed("bench:v1:" + domain.NewOpaqueToken().Reveal())
	if err != nil {
		return "", err
	}
	c := domain.Connection{ID: domain.NewConnectionID(), UserID: u.ID, SmartcarUserID: "sc-" + string(u.ID),
		Status: domain.ConnectionActive, Scopes: domain.DefaultConnectScopes(), Tokens: tokens,
		AccessExpiresAt: at.Add(domain.VehicleAccessTokenLifetime), RefreshExpiresAt: at.Add(domain.VehicleRefreshTokenLifetime),
		CreatedAt: at, UpdatedAt: at, RefreshedAt: at}
	vs := []domain.Vehicle{
		{ID: domain.NewVehicleID(), SmartcarID: smartcarIDs[0], Make: "TESLA", Model: "Model 3", Year: 2023, CreatedAt: at},
		{ID: domain.NewVehicleID(), SmartcarID: smartcarIDs[1], Make: "FORD", Model: "Mach-E", Year: 2024, CreatedAt: at.Add(time.Second)},
	}
	if _, err := conns.SaveGrant(ctx, c, vs); err != nil {
		return "", err
	}
	locked := true
	_, err = conns.SaveStatus(ctx, domain.VehicleStatus{VehicleID: vs[0].ID, Locked: &locked,
		Doors:      []domain.Opening{{Type: "frontLeft", Status: domain.OpeningClosed}, {Type: "frontRight", Status: domain.OpeningClosed}},
		Windows:    []domain.Opening{{Type: "frontLeft", Status: domain.OpeningClosed}},
		ObservedAt: at, FetchedAt: at, Source: domain.StatusLive})
	return u.ID, err
}
