package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/postgres/pgtest"
	"github.com/betterkey/backend/app/identity"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// historyUsers is how many accounts the history benchmarks spread their calls over; each has
// two cars.
const historyUsers = 200

// History at 1× is, per account: 10 ended sessions with 100 refresh hashes they rotated away,
// and 50 finished commands (a few weeks of a phone and a watch); 10× and 100× multiply it, on
// every account. 100× is 200,000 sessions, 2,000,000 rotated hashes and 1,000,000 commands.
const (
	historySessions = 10
	historyHashes   = 100
	historyCommands = 50
)

// seedHistory generates the accounts, their cars and scale× their history inside PostgreSQL.
func seedHistory(tb testing.TB, url string, scale int) {
	tb.Helper()
	conn, err := pgx.Connect(tb.Context(), url)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.Background())
	q := strings.NewReplacer("{U}", fmt.Sprint(historyUsers), "{S}", fmt.Sprint(historySessions*scale),
		"{H}", fmt.Sprint(historyHashes*scale), "{C}", fmt.Sprint(historyCommands*scale)).Replace(`
INSERT INTO users (id, apple_issuer, apple_subject, created_at, updated_at)
SELECT md5('u'||u)::uuid, 'https://appleid.apple.com', 'hist-'||u, now() - interval '400 days', now() FROM generate_series(1, {U}) u;
INSERT INTO connections (id, user_id, smartcar_user_id, status, scopes, access_expires_at, refresh_expires_at, created_at, updated_at)
SELECT md5('c'||u)::uuid, md5('u'||u)::uuid, 'sc-'||u, 'active', 'required:control_security read_security read_vehicle_info',
	now() + interval '2 hours', now() + interval '60 days', now() - interval '300 days', now() FROM generate_series(1, {U}) u;
INSERT INTO vehicles (id, user_id, connection_id, smartcar_id, make, model, year, created_at)
SELECT md5('v'||u||'-'||k)::uuid, md5('u'||u)::uuid, md5('c'||u)::uuid, 'car-'||u||'-'||k, 'TESLA', 'Model 3', 2023, now() - interval '300 days'
FROM generate_series(1, {U}) u, generate_series(1, 2) k;
INSERT INTO sessions (id, user_id, install_id, device, refresh_hash, created_at, last_used_at, idle_expires_at,
	absolute_expires_at, revoked_at, revoke_reason)
SELECT md5('s'||u||'-'||i)::uuid, md5('u'||u)::uuid, 'install-1', CASE WHEN i%2 = 0 THEN 'phone' ELSE 'watch' END,
	sha256(('s'||u||'-'||i)::bytea), now() - interval '20 days' - i * interval '1 minute', now() - interval '20 days',
	now() + interval '10 days', now() + interval '70 days', now() - interval '19 days', 'replaced_by_new_sign_in'
FROM generate_series(1, {U}) u, generate_series(1, {S}) i;
INSERT INTO session_refresh_history (refresh_hash, session_id, rotated_at)
SELECT sha256(('h'||u||'-'||i)::bytea), md5('s'||u||'-'||(i%{S}+1))::uuid, now() - interval '19 days'
FROM generate_series(1, {U}) u, generate_series(1, {H}) i;
INSERT INTO commands (id, user_id, vehicle_id, connection_id, device, action, status, created_at, updated_at,
	dispatched_at, finished_at, deadline_at)
SELECT md5('k'||u||'-'||i)::uuid, md5('u'||u)::uuid, md5('v'||u||'-'||(i%2+1))::uuid, md5('c'||u)::uuid, 'phone',
	CASE WHEN i%2 = 0 THEN 'lock' ELSE 'unlock' END, CASE WHEN i%50 = 0 THEN 'unknown' ELSE 'succeeded' END,
	now() - interval '1 day' - i * interval '1 minute', now(), now() - interval '1 day', now() - interval '1 day', now()
FROM generate_series(1, {U}) u, generate_series(1, {C}) i;
ANALYZE;`)
	if _, err := conn.Exec(tb.Context(), q); err != nil {
		tb.Fatalf("seed history: %v", err)
	}
}

// benchApple accepts "subject nonce-claim" tokens: the benchmarks measure the stores, and the
// verifier has benchmarks of its own.
type benchApple struct{}

func (benchApple) Verify(_ context.Context, tok string) (domain.AppleIdentity, error) {
	sub, nonce, _ := strings.Cut(tok, " ")
	return domain.AppleIdentity{Issuer: "https://appleid.apple.com", Subject: sub, NonceHash: nonce}, nil
}

// benchTokens issues opaque access tokens; signing has benchmarks of its own.
type benchTokens struct{}

func (benchTokens) Issue(ports.AccessClaims) (domain.Secret, error) {
	return domain.NewOpaqueToken(), nil
}
func (benchTokens) Verify(string, time.Time) (ports.AccessClaims, error) {
	return ports.AccessClaims{}, domain.ErrInvalidAccessToken
}

// BenchmarkHistory measures the hot paths of an existing account at 1×, 10× and 100× history (see
// seedHistory), one call at a time, so ns/op is the latency of the path's database work:
//   - SignIn: identity.Service.SignIn of an existing user on a known install (nonce issued and
//     consumed, user found, live sessions read, the install's session replaced, a session created);
//   - Refresh: identity.Service.Refresh (session found by hash, locked, rotated, hash remembered);
//   - Vehicles: the vehicle list;
//   - Submit: what a lock command costs the database from the request to its outcome: the
//     vehicle read, the admission (guard, per-user lock, rate limit, insert), the dispatch and
//     the success saved.
//
// Flat means the 100× figure within 20 % of the 1×. Run with
// go test -run '^$' -bench History -benchtime 2000x -cpu 2 ./adapters/postgres/
func BenchmarkHistory(b *testing.B) {
	for _, scale := range []int{1, 10, 100} {
		url := pgtest.NewURL(b)
		db := pgtest.OpenURL(b, url)
		seedHistory(b, url, scale)
		sessions, conns, commands := postgres.NewSessions(db), postgres.NewConnections(db), postgres.NewCommands(db)
		id := identity.New(identity.Deps{Users: postgres.NewUsers(db), Sessions: sessions, Nonces: postgres.NewNonces(db),
			Apple: benchApple{}, Tokens: benchTokens{}}, identity.Config{})
		signIn := func(ctx context.Context, u int) (identity.Tokens, error) {
			raw, _, err := id.IssueNonce(ctx)
			if err != nil {
				return identity.Tokens{}, err
			}
			return id.SignIn(ctx, identity.SignInInput{IdentityToken: domain.NewSecret(fmt.Sprintf("hist-%d %s", u, domain.AppleNonceClaim(raw.Reveal()))),
				Nonce: raw, InstallID: "install-1", Device: "phone"})
		}
		name := fmt.Sprintf("%dx", scale)
		b.Run("SignIn/"+name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				if _, err := signIn(b.Context(), i%historyUsers+1); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run("Refresh/"+name, func(b *testing.B) {
			tokens := make([]domain.Secret, historyUsers)
			for u := range tokens {
				t, err := signIn(b.Context(), u+1)
				if err != nil {
					b.Fatal(err)
				}
				tokens[u] = t.RefreshToken
			}
			i := 0
			for b.Loop() {
				t, err := id.Refresh(b.Context(), tokens[i%historyUsers])
				if err != nil {
					b.Fatal(err)
				}
				tokens[i%historyUsers] = t.RefreshToken
				i++
			}
		})
		b.Run("Vehicles/"+name, func(b *testing.B) {
			users := make([]domain.UserID, historyUsers)
			for u := range users {
				users[u] = domain.UserID(seedID(fmt.Sprintf("u%d", u+1)))
			}
			i := 0
			for b.Loop() {
				if vs, err := conns.Vehicles(b.Context(), users[i%historyUsers]); err != nil || len(vs) != 2 {
					b.Fatalf("Vehicles = %d, %v", len(vs), err)
				}
				i++
			}
		})
		b.Run("Submit/"+name, func(b *testing.B) {
			type car struct {
				user    domain.UserID
				vehicle domain.VehicleID
			}
			cars := make([]car, 0, 2*historyUsers)
			for u := 1; u <= historyUsers; u++ {
				for k := 1; k <= 2; k++ {
					cars = append(cars, car{domain.UserID(seedID(fmt.Sprintf("u%d", u))),
						domain.VehicleID(seedID(fmt.Sprintf("v%d-%d", u, k)))})
				}
			}
			limit := ports.CommandRateLimit{Window: 10 * time.Minute, Max: 30}
			i := 0
			for b.Loop() {
				c := cars[i%len(cars)]
				i++
				ctx := b.Context()
				v, err := conns.Vehicle(ctx, c.user, c.vehicle)
				if err != nil {
					b.Fatal(err)
				}
				now := time.Now()
				cmd := domain.NewCommand(domain.CommandRequest{UserID: c.user, VehicleID: v.ID, ConnectionID: v.ConnectionID,
					Action: domain.CommandLock, Device: domain.DevicePhone}, now, domain.DefaultCommandTTL)
				a, err := commands.Admit(ctx, cmd, now.Add(20*time.Second), limit, now)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := commands.Dispatch(ctx, a.Command.ID, now, now.Add(20*time.Second)); err != nil {
					b.Fatal(err)
				}
				if _, err := commands.Update(ctx, a.Command.ID, func(x *domain.Command) error {
					return x.Succeed(time.Now(), "req")
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
