package keys_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/postgres/pgtest"
	"github.com/betterkey/backend/adapters/vault"
	"github.com/betterkey/backend/adapters/vault/vaulttest"
	"github.com/betterkey/backend/app/keys"
	"github.com/betterkey/backend/domain"
)

// benchSecrets is how many stored secrets each rewrap run moves to the new version.
const benchSecrets = 10_000

// benchTokenSet is the size of a sealed Smartcar token set (two tokens and their expiries as JSON).
var benchTokenSet = domain.NewSecret(string(make([]byte, 320)))

// BenchmarkRewrapVaultPostgres measures the rewrap job end to end: the real local Vault (batch
// rewrap over loopback HTTP) and the real PostgreSQL store (keyset pages, one compare-and-swap
// UPDATE per secret). Each iteration rotates the key and moves all benchSecrets secrets to it;
// secrets/s is the figure to compare with the ≥5,000/s target.
func BenchmarkRewrapVaultPostgres(b *testing.B) {
	ctx := b.Context()
	addr, root, _ := vaulttest.Start(b)
	c, err := vault.New(ctx, vault.Config{Addr: addr, Token: root, Key: vaulttest.Key, Timeout: 30 * time.Second}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	dbURL := pgtest.NewURL(b)
	db, err := postgres.Open(ctx, dbURL, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	if err := postgres.Migrate(ctx, db); err != nil {
		b.Fatal(err)
	}
	seedSealed(b, dbURL, db, c)
	svc := keys.New(keys.Deps{Keys: c, Cipher: c, Secrets: postgres.NewSealedSecrets(db)})

	for _, batch := range []int{100, 250, 1000} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			moved := 0
			for b.Loop() {
				if _, err := svc.Rotate(ctx); err != nil {
					b.Fatal(err)
				}
				p, err := svc.Rewrap(ctx, batch, nil)
				if err != nil {
					b.Fatal(err)
				}
				if p.Done != benchSecrets || p.Remaining != 0 {
					b.Fatalf("rewrap moved %+v, want all %d", p, benchSecrets)
				}
				moved += p.Done
			}
			b.ReportMetric(float64(moved)/b.Elapsed().Seconds(), "secrets/s")
		})
	}
}

// seedSealed seals benchSecrets token sets of one user through Vault (in parallel, as live
// traffic would have) and copies them into sealed_secrets in one statement.
func seedSealed(b *testing.B, dbURL string, db *postgres.DB, c *vault.Cipher) {
	b.Helper()
	ctx := b.Context()
	u := domain.NewUser(domain.AppleIdentity{Issuer: "https://appleid.apple.com", Subject: "bench-" + time.Now().String()}, time.Now())
	if err := postgres.NewUsers(db).Create(ctx, u); err != nil {
		b.Fatal(err)
	}
	rows := make([][]any, benchSecrets)
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < benchSecrets; i += workers {
				bind := domain.SecretBinding{Purpose: domain.PurposeSmartcarTokens, UserID: u.ID, ConnectionID: fmt.Sprintf("conn-%06d", i)}
				s, err := c.Seal(ctx, bind, benchTokenSet)
				if err != nil {
					errs <- err
					return
				}
				now := time.Now().UTC()
				rows[i] = []any{bind.Purpose, string(bind.UserID), bind.ConnectionID, s.KeyVersion(), s.Ciphertext(), now, now}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("seal: %v", err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	cols := []string{"purpose", "user_id", "connection_id", "key_version", "ciphertext", "created_at", "updated_at"}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"sealed_secrets"}, cols, pgx.CopyFromRows(rows)); err != nil {
		b.Fatalf("copy sealed secrets: %v", err)
	}
}
