package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/postgres/pgtest"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// benchCarsPerOwner is how many vehicles each benchmark owner has; every admission is for a
// vehicle nobody commanded before, and no owner reaches the rate limit below.
const benchCarsPerOwner = 16

// benchAdmitParallelism multiplies GOMAXPROCS into the number of concurrent admissions: 4 on the
// 2-core reference machine, which keeps it busy (the database shares the cores) while the
// latencies measure the work rather than a queue in front of it.
const benchAdmitParallelism = 2

// benchLockLimit is the production default for locks.
func benchLockLimit() ports.CommandRateLimit {
	return ports.CommandRateLimit{Window: 10 * time.Minute, Max: 30}
}

// BenchmarkCommandAdmission measures CommandStore.Admit on PostgreSQL: the transaction that takes
// the per-user lock, claims the vehicle's guard, looks for commands an expired lease left behind,
// counts the owner's recent commands against the rate limit, and inserts the command. Every
// admission is for a distinct vehicle (16 per owner), as commands for many cars arrive. Latencies
// are recorded per call; the p50 and p99 columns are computed from them. Run with
// go test -run '^$' -bench CommandAdmission -benchtime 20000x ./adapters/postgres/
func BenchmarkCommandAdmission(b *testing.B) {
	db := pgtest.Open(b)
	store := postgres.NewCommands(db)
	cars := seedCommandCars(b, db, b.N)
	latencies := make([]time.Duration, b.N)
	limit := benchLockLimit()
	var next atomic.Int64
	b.SetParallelism(benchAdmitParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			c := cars[i]
			now := time.Now()
			cmd := domain.NewCommand(domain.CommandRequest{UserID: c.user, VehicleID: c.vehicle, ConnectionID: c.conn,
				Action: domain.CommandLock, SessionID: c.session, Device: domain.DevicePhone}, now, domain.DefaultCommandTTL)
			if _, err := store.Admit(b.Context(), cmd, cmd.Deadline, limit, now); err != nil {
				b.Error(err)
				return
			}
			latencies[i] = time.Since(now)
		}
	})
	b.StopTimer()
	reportLatencies(b, latencies, "commands/s")
}

// reportLatencies adds throughput, p50 and p99 (in ms) to the benchmark's output.
func reportLatencies(b *testing.B, latencies []time.Duration, unit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
	slices.Sort(latencies)
	at := func(q float64) float64 {
		return float64(latencies[min(len(latencies)-1, int(q*float64(len(latencies))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// commandCar is one seeded vehicle with its owner and connection.
type commandCar struct {
	user    domain.UserID
	session domain.SessionID
	conn    domain.ConnectionID
	vehicle domain.VehicleID
}

// seedCommandCars stores n vehicles, benchCarsPerOwner per owner, from 8 goroutines.
func seedCommandCars(b *testing.B, db *postgres.DB, n int) []commandCar {
	b.Helper()
	owners := (n + benchCarsPerOwner - 1) / benchCarsPerOwner
	out := make([][]commandCar, owners)
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		errMu sync.Mutex
		first error
	)
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < owners; i = int(next.Add(1) - 1) {
				cars, err := seedCommandOwner(b.Context(), db)
				if err != nil {
					errMu.Lock()
					first = err
					errMu.Unlock()
					return
				}
				out[i] = cars
			}
		})
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
	return slices.Concat(out...)[:n]
}

// seedCommandOwner stores a user with one connection of benchCarsPerOwner vehicles.
func seedCommandOwner(ctx context.Context, db *postgres.DB) ([]commandCar, error) {
	at := time.Now()
	u := domain.NewUser(domain.AppleIdentity{Issuer: "iss", Subject: domain.NewOpaqueToken().Reveal()}, at)
	if err := postgres.NewUsers(db).Create(ctx, u); err != nil {
		return nil, err
	}
	tokens, err := domain.ParseSealed("bench:v1:" + domain.NewOpaqueToken().Reveal())
	if err != nil {
		return nil, err
	}
	c := domain.Connection{ID: domain.NewConnectionID(), UserID: u.ID, SmartcarUserID: "sc-" + string(u.ID),
		Status: domain.ConnectionActive, Scopes: domain.DefaultConnectScopes(), Tokens: tokens,
		AccessExpiresAt: at.Add(domain.VehicleAccessTokenLifetime), RefreshExpiresAt: at.Add(domain.VehicleRefreshTokenLifetime),
		CreatedAt: at, UpdatedAt: at, RefreshedAt: at}
	vs := make([]domain.Vehicle, benchCarsPerOwner)
	for i := range vs {
		vs[i] = domain.Vehicle{ID: domain.NewVehicleID(), SmartcarID: fmt.Sprintf("sc-%d", i), Make: "TESLA", CreatedAt: at}
	}
	stored, err := postgres.NewConnections(db).SaveGrant(ctx, c, vs)
	if err != nil {
		return nil, err
	}
	session := domain.NewSessionID()
	out := make([]commandCar, len(stored))
	for i, v := range stored {
		out[i] = commandCar{user: u.ID, session: session, conn: c.ID, vehicle: v.ID}
	}
	return out, nil
}
