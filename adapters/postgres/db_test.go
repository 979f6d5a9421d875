package postgres_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/domain"
)

func TestOpenRejectsUnsupportedURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "betterkey.db", "mysql://localhost/x", "sqlite:", "sqlite::memory:", "file::memory:?cache=shared", "file:x.db?mode=memory", "file:x.db?_pragma=foreign_keys(0)", "file:x.db?_time_format=sqlite"} {
		if db, err := postgres.Open(t.Context(), u, postgres.Options{}); err == nil {
			_ = db.Close()
			t.Errorf("Open(%q) succeeded, want an error", u)
		}
	}
}

func TestOpenErrorHidesPassword(t *testing.T) {
	t.Parallel()
	const canary = "s3cr3t-canary"
	_, err := postgres.Open(t.Context(), "postgres://bk:"+canary+"@127.0.0.1:1/x?connect_timeout=2", postgres.Options{})
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if strings.Contains(err.Error(), canary) {
		t.Errorf("error reveals the password: %v", err)
	}
}

func TestOpenSQLiteForms(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, u := range []string{
		"sqlite:" + filepath.Join(dir, "new", "dir", "a.db"),
		"sqlite://" + filepath.Join(dir, "b.db"),
		"file:" + filepath.Join(dir, "c.db") + "?cache=private",
	} {
		db, err := postgres.Open(t.Context(), u, postgres.Options{})
		if err != nil {
			t.Errorf("Open(%q): %v", u, err)
			continue
		}
		if err := postgres.Migrate(t.Context(), db); err != nil {
			t.Errorf("Migrate(%q): %v", u, err)
		}
		if got := db.Dialect(); got != postgres.DialectSQLite {
			t.Errorf("Open(%q).Dialect() = %q, want sqlite", u, got)
		}
		if err := db.Close(); err != nil {
			t.Errorf("Close(%q): %v", u, err)
		}
	}
	for _, name := range []string{"new/dir/a.db", "b.db", "c.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("database file %s: %v", name, err)
		}
	}
}

func TestMigrateTwiceIsANoOp(t *testing.T) {
	t.Parallel()
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t) // migrated once already
			if err := postgres.Migrate(t.Context(), db); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
		})
	}
}

// Stores promise what a later read returns: instants in UTC at microsecond precision, whatever
// zone and precision the caller used.
func TestTimesComeBackUTCAtMicroseconds(t *testing.T) {
	t.Parallel()
	zone := time.FixedZone("UTC-7", -7*3600)
	in := time.Date(2031, 3, 4, 5, 6, 7, 123456789, zone)
	want := time.Date(2031, 3, 4, 12, 6, 7, 123456000, time.UTC)
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			users, sessions := postgres.NewUsers(db), postgres.NewSessions(db)
			u := domain.NewUser(domain.AppleIdentity{Issuer: "iss", Subject: "sub"}, in)
			if err := users.Create(t.Context(), u); err != nil {
				t.Fatalf("Create user: %v", err)
			}
			x := domain.NewSession(u.ID, "install", domain.DevicePhone, "", domain.HashToken("r"), in, domain.DefaultSessionLifetimes())
			x.Revoke(in, domain.RevokeAdmin)
			if err := sessions.Create(t.Context(), x); err != nil {
				t.Fatalf("Create session: %v", err)
			}
			gu, err := users.Get(t.Context(), u.ID)
			if err != nil {
				t.Fatalf("Get user: %v", err)
			}
			gs, err := sessions.Get(t.Context(), x.ID)
			if err != nil {
				t.Fatalf("Get session: %v", err)
			}
			for name, got := range map[string]time.Time{
				"user.CreatedAt": gu.CreatedAt, "user.UpdatedAt": gu.UpdatedAt,
				"session.CreatedAt": gs.CreatedAt, "session.LastUsedAt": gs.LastUsedAt, "session.RevokedAt": *gs.RevokedAt,
			} {
				if got != want { // == compares location and precision too
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
		})
	}
}

// The schema's foreign keys hold on both engines (SQLite enforces them only when asked).
func TestSessionOfMissingUserIsRefused(t *testing.T) {
	t.Parallel()
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			x := domain.NewSession(domain.NewUserID(), "install", domain.DevicePhone, "", domain.HashToken(t.Name()), time.Now(), domain.DefaultSessionLifetimes())
			err := postgres.NewSessions(db).Create(t.Context(), x)
			if err == nil || errors.Is(err, domain.ErrConflict) || errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("Create = %v, want an unclassified foreign key error", err)
			}
		})
	}
}

// Two handles on one SQLite file stand in for two processes: BEGIN IMMEDIATE and the busy
// timeout must serialise their Updates of one session without losing any.
func TestSQLiteUpdatesSerialiseAcrossHandles(t *testing.T) {
	t.Parallel()
	url := "sqlite:" + filepath.Join(t.TempDir(), "shared.db")
	var handles []*postgres.DB
	for range 2 {
		db, err := postgres.Open(t.Context(), url, postgres.Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = db.Close() })
		if err := postgres.Migrate(t.Context(), db); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		handles = append(handles, db)
	}
	stores := []*postgres.Sessions{postgres.NewSessions(handles[0]), postgres.NewSessions(handles[1])}
	u := domain.NewUser(domain.AppleIdentity{Issuer: "iss", Subject: "sub"}, time.Now())
	if err := postgres.NewUsers(handles[0]).Create(t.Context(), u); err != nil {
		t.Fatalf("Create user: %v", err)
	}
	x := domain.NewSession(u.ID, "install", domain.DevicePhone, "0", domain.HashToken("r0"), time.Now(), domain.DefaultSessionLifetimes())
	if err := stores[0].Create(t.Context(), x); err != nil {
		t.Fatalf("Create session: %v", err)
	}
	const n = 20
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := stores[i%2].Update(t.Context(), x.ID, func(y *domain.Session) error {
				c, err := strconv.Atoi(y.DeviceName)
				y.DeviceName = strconv.Itoa(c + 1)
				y.Rotate(domain.HashToken("r"+strconv.Itoa(i+1)), time.Now(), domain.DefaultSessionLifetimes())
				return err
			})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Update: %v", err)
		}
	}
	got, err := stores[1].Get(t.Context(), x.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.DeviceName != strconv.Itoa(n) {
		t.Errorf("counter = %s after %d Updates through two handles, want %d", got.DeviceName, n, n)
	}
}

// TestOpenCreatesTheFileDatabaseDirectory: the first run on a fresh clone has no .betterkey/.
func TestOpenCreatesTheFileDatabaseDirectory(t *testing.T) {
	for _, scheme := range []string{"file:", "sqlite:"} {
		dir := filepath.Join(t.TempDir(), "fresh", "state")
		db, err := postgres.Open(t.Context(), scheme+filepath.Join(dir, "betterkey.db"), postgres.Options{})
		if err != nil {
			t.Fatalf("%s: %v", scheme, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
