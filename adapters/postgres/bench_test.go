package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/domain"
)

// benchParallelism multiplies GOMAXPROCS into the number of goroutines issuing requests, standing
// in for concurrent app requests on one replica.
const benchParallelism = 8

// BenchmarkSignIn measures the store calls of one first sign-in: the nonce issued and consumed,
// the Apple subject looked up and missed, the user created, the live sessions listed, the
// session created. Run with -bench SignIn/PostgreSQL; ops/s is in the signins/s column.
func BenchmarkSignIn(b *testing.B) {
	for _, e := range engines() {
		b.Run(e.name, func(b *testing.B) {
			db := e.open(b)
			users, sessions, nonces := postgres.NewUsers(db), postgres.NewSessions(db), postgres.NewNonces(db)
			signIn := func(ctx context.Context) error {
				now := time.Now()
				raw := domain.NewOpaqueToken()
				h := domain.HashToken(raw.Reveal())
				if err := nonces.Put(ctx, domain.Nonce{Hash: h, ExpiresAt: now.Add(domain.NonceTTL)}); err != nil {
					return err
				}
				if err := nonces.Consume(ctx, h, now); err != nil {
					return err
				}
				id := domain.AppleIdentity{Issuer: "https://appleid.apple.com", Subject: raw.Reveal(), Email: "a@example.com"}
				if _, err := users.GetByApple(ctx, id.Issuer, id.Subject); !errors.Is(err, domain.ErrNotFound) {
					return errors.Join(errors.New("lookup of a new subject did not miss"), err)
				}
				u := domain.NewUser(id, now)
				if err := users.Create(ctx, u); err != nil {
					return err
				}
				if _, err := sessions.ListLive(ctx, u.ID, now, domain.MaxLiveSessions); err != nil {
					return err
				}
				refresh := domain.HashToken(domain.NewOpaqueToken().Reveal())
				return sessions.Create(ctx, domain.NewSession(u.ID, "install", domain.DevicePhone, "iPhone", refresh, now, domain.DefaultSessionLifetimes()))
			}
			runParallel(b, "signins/s", func(ctx context.Context) (func() error, error) {
				return func() error { return signIn(ctx) }, nil
			})
		})
	}
}

// BenchmarkRefresh measures the store calls of one refresh: the session found by its current
// refresh hash, then locked, checked and rotated. Each goroutine refreshes its own session, as
// distinct installs do. Ops/s is in the refreshes/s column.
func BenchmarkRefresh(b *testing.B) {
	for _, e := range engines() {
		b.Run(e.name, func(b *testing.B) {
			db := e.open(b)
			users, sessions := postgres.NewUsers(db), postgres.NewSessions(db)
			lifetimes := domain.DefaultSessionLifetimes()
			runParallel(b, "refreshes/s", func(ctx context.Context) (func() error, error) {
				now := time.Now()
				u := domain.NewUser(domain.AppleIdentity{Issuer: "iss", Subject: domain.NewOpaqueToken().Reveal()}, now)
				if err := users.Create(ctx, u); err != nil {
					return nil, err
				}
				current := domain.HashToken(domain.NewOpaqueToken().Reveal())
				if err := sessions.Create(ctx, domain.NewSession(u.ID, "install", domain.DevicePhone, "", current, now, lifetimes)); err != nil {
					return nil, err
				}
				return func() error {
					id, err := sessions.FindByRefresh(ctx, current)
					if err != nil {
						return err
					}
					next := domain.HashToken(domain.NewOpaqueToken().Reveal())
					_, err = sessions.Update(ctx, id, func(s *domain.Session) error {
						if err := s.Usable(time.Now()); err != nil {
							return err
						}
						if !s.RefreshHash.Equal(current) {
							return domain.ErrRefreshTokenReused
						}
						s.Rotate(next, time.Now(), lifetimes)
						return nil
					})
					current = next
					return err
				}, nil
			})
		})
	}
}

// runParallel runs one operation per iteration on benchParallelism×GOMAXPROCS goroutines, each
// with its own state from setup, and reports the throughput as unit. Failures are reported with
// Error and end only their goroutine, since FailNow belongs to the benchmark's own goroutine.
func runParallel(b *testing.B, unit string, setup func(context.Context) (func() error, error)) {
	ctx := b.Context()
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		op, err := setup(ctx)
		if err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			if err := op(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}
