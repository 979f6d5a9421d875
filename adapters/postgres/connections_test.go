package postgres_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/postgres/pgtest"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

func TestModuleProvidesVehicleLinkStores(t *testing.T) {
	db := pgtest.OpenSQLite(t)
	var (
		conns   ports.ConnectionStore
		states  ports.ConnectStateStore
		secrets ports.SealedSecretStore
	)
	app := fxtest.New(t, fx.NopLogger, fx.Supply(db), postgres.Module, fx.Populate(&conns, &states, &secrets))
	app.RequireStart().RequireStop()
	if conns == nil || states == nil || secrets == nil {
		t.Fatalf("stores not provided: connections=%v connect states=%v sealed secrets=%v", conns, states, secrets)
	}
}

// grant stores a fresh user and an active connection with one vehicle, its tokens sealed as
// ciphertext.
func grant(t *testing.T, db *postgres.DB, ciphertext string) domain.Connection {
	t.Helper()
	at := time.Now()
	u := domain.NewUser(domain.AppleIdentity{Issuer: "iss", Subject: domain.NewOpaqueToken().Reveal()}, at)
	if err := postgres.NewUsers(db).Create(t.Context(), u); err != nil {
		t.Fatalf("create user: %v", err)
	}
	tokens, err := domain.ParseSealed(ciphertext)
	if err != nil {
		t.Fatalf("ParseSealed: %v", err)
	}
	c := domain.Connection{ID: domain.NewConnectionID(), UserID: u.ID, SmartcarUserID: "sc-" + string(domain.NewUserID()),
		Status: domain.ConnectionActive, Scopes: domain.DefaultConnectScopes(), Tokens: tokens,
		AccessExpiresAt: at.Add(time.Hour), RefreshExpiresAt: at.Add(domain.VehicleRefreshTokenLifetime),
		CreatedAt: at, UpdatedAt: at, RefreshedAt: at}
	v := domain.Vehicle{ID: domain.NewVehicleID(), SmartcarID: "sc-vehicle", Make: "TESLA", Model: "Model 3", Year: 2024, CreatedAt: at}
	if _, err := postgres.NewConnections(db).SaveGrant(t.Context(), c, []domain.Vehicle{v}); err != nil {
		t.Fatalf("SaveGrant: %v", err)
	}
	return c
}

// TestUpdateKeepsARewrapThatRanDuringIt runs a rewrap while an Update holds the connection's row
// lock: the rewrap does not wait for the lock, and the Update, which leaves the tokens alone,
// must not write the old ciphertext back over the new one. (SQLite cannot run this: its one
// writer is the Update's.)
func TestUpdateKeepsARewrapThatRanDuringIt(t *testing.T) {
	t.Parallel()
	db := pgtest.Open(t)
	conns, secrets := postgres.NewConnections(db), postgres.NewSealedSecrets(db)
	c := grant(t, db, "test:v1:old")
	rewrapped, _ := domain.ParseSealed("test:v2:new")
	_, err := conns.Update(t.Context(), c.ID, func(x *domain.Connection) error {
		ok, err := secrets.Replace(t.Context(), []ports.SecretSwap{{Binding: x.TokenBinding(), Old: x.Tokens, Replacement: rewrapped}})
		if err != nil || !ok[0] {
			t.Errorf("Replace during Update = %v, %v; want [true], nil", ok, err)
		}
		x.Status = domain.ConnectionNeedsReauth
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	got, err := conns.Get(t.Context(), c.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Tokens.Ciphertext() != rewrapped.Ciphertext() || got.Status != domain.ConnectionNeedsReauth {
		t.Errorf("after Update = %v %s, want the rewrapped tokens and needs_reauth", got.Tokens, got.Status)
	}
}

// TestTokensLiveOnlyInSealedSecrets reads every row of every table as text and finds the sealed
// token set in exactly one place, the ciphertext column, with its key version beside it; a
// Replace moves both and stamps updated_at.
func TestTokensLiveOnlyInSealedSecrets(t *testing.T) {
	t.Parallel()
	url := pgtest.NewURL(t)
	db, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := postgres.Migrate(t.Context(), db); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	raw, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = raw.Close(t.Context()) })

	const canary = "CANARYSEALEDPAYLOAD42"
	c := grant(t, db, "test:v3:"+canary)
	rows, _ := raw.Query(t.Context(), `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string]) // a Query error surfaces here

	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	var seen []string
	for _, table := range tables {
		rows, _ := raw.Query(t.Context(), "SELECT row_to_json(t)::text FROM "+pgx.Identifier{table}.Sanitize()+" t")
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		for _, text := range texts {
			if strings.Contains(text, canary) {
				seen = append(seen, table)
			}
		}
	}
	if len(seen) != 1 || seen[0] != "sealed_secrets" {
		t.Errorf("sealed token set found in %v, want only in sealed_secrets", seen)
	}

	var (
		version int
		updated time.Time
	)
	row := raw.QueryRow(t.Context(), `SELECT key_version, updated_at FROM sealed_secrets
		WHERE purpose = $1 AND user_id = $2 AND connection_id = $3`, domain.PurposeSmartcarTokens, string(c.UserID), string(c.ID))
	if err := row.Scan(&version, &updated); err != nil || version != 3 {
		t.Fatalf("sealed row = version %d, %v; want 3", version, err)
	}
	next, _ := domain.ParseSealed("test:v4:rewrapped")
	ok, err := postgres.NewSealedSecrets(db).Replace(t.Context(), []ports.SecretSwap{{Binding: c.TokenBinding(), Old: c.Tokens, Replacement: next}})
	if err != nil || !ok[0] {
		t.Fatalf("Replace = %v, %v; want [true], nil", ok, err)
	}
	var after time.Time
	row = raw.QueryRow(t.Context(), `SELECT key_version, updated_at FROM sealed_secrets
		WHERE purpose = $1 AND user_id = $2 AND connection_id = $3`, domain.PurposeSmartcarTokens, string(c.UserID), string(c.ID))
	if err := row.Scan(&version, &after); err != nil || version != 4 || !after.After(updated) {
		t.Errorf("after Replace: version %d, updated_at %v (was %v), %v; want 4 and a later time", version, after, updated, err)
	}
}
