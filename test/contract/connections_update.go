package contract

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/betterkey/backend/domain"
)

// errStaleTokens is what an Update closure returns when another refresh got there first.
var errStaleTokens = errors.New("contract: tokens changed underneath")

func connectionSaveGrantRejects(t *testing.T, newStores NewConnectionStores) {
	t.Run("SaveGrant/Invalid/ReturnsKindInvalidAndStoresNothing", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		cases := map[string]func(c *domain.Connection, vs []domain.Vehicle){
			"no tokens":                   func(c *domain.Connection, _ []domain.Vehicle) { c.Tokens = domain.SealedSecret{} },
			"no smartcar user":            func(c *domain.Connection, _ []domain.Vehicle) { c.SmartcarUserID = "" },
			"unknown status":              func(c *domain.Connection, _ []domain.Vehicle) { c.Status = "paused" },
			"scope with a space":          func(c *domain.Connection, _ []domain.Vehicle) { c.Scopes = []string{"a b"} },
			"empty scope":                 func(c *domain.Connection, _ []domain.Vehicle) { c.Scopes = []string{""} },
			"vehicle id not a uuid":       func(_ *domain.Connection, vs []domain.Vehicle) { vs[0].ID = "v1" },
			"vehicle without smartcar id": func(_ *domain.Connection, vs []domain.Vehicle) { vs[0].SmartcarID = "" },
			"vehicle listed twice":        func(_ *domain.Connection, vs []domain.Vehicle) { vs[1].SmartcarID = vs[0].SmartcarID },
			"vehicle id given twice":      func(_ *domain.Connection, vs []domain.Vehicle) { vs[1].ID = vs[0].ID },
		}
		for name, spoil := range cases {
			c, vs := newConnection(t, u.ID, now(), connectionKeyVersion), newVehicles(2, now())
			spoil(&c, vs)
			if _, err := s.SaveGrant(t.Context(), c, vs); domain.KindOf(err) != domain.KindInvalid {
				t.Errorf("SaveGrant with %s = %v, want a KindInvalid error", name, err)
			}
			if _, err := s.Get(t.Context(), c.ID); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("Get after SaveGrant with %s = %v, want ErrNotFound", name, err)
			}
		}
		for name, c := range map[string]domain.Connection{
			"connection id not a uuid": func() domain.Connection {
				c := newConnection(t, u.ID, now(), connectionKeyVersion)
				c.ID = "c1"
				return c
			}(),
			"user id not a uuid": newConnection(t, "u1", now(), connectionKeyVersion),
		} {
			if _, err := s.SaveGrant(t.Context(), c, newVehicles(1, now())); domain.KindOf(err) != domain.KindInvalid {
				t.Errorf("SaveGrant with %s = %v, want a KindInvalid error", name, err)
			}
		}
		wantVehicles(t, s, u.ID, nil)
	})
}

func connectionUpdate(t *testing.T, newStores NewConnectionStores) {
	t.Run("Update/SavesTokensAndReturnsWhatGetReturns", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		vs := seedGrant(t, s, c, 1)
		at := now().Add(time.Hour)
		next := newSealed(t, connectionKeyVersion+1)
		got, err := s.Update(t.Context(), c.ID, func(x *domain.Connection) error {
			if diff := cmp.Diff(*x, c, sealedEqual()); diff != "" {
				t.Errorf("fn got (-got +want):\n%s", diff)
			}
			x.Tokens, x.Status, x.Scopes = next, domain.ConnectionNeedsReauth, []string{"read_security"}
			x.AccessExpiresAt, x.RefreshExpiresAt = at.Add(time.Minute), at.Add(time.Hour)
			x.UpdatedAt, x.RefreshedAt = at, at
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		want := c
		want.Tokens, want.Status, want.Scopes = next, domain.ConnectionNeedsReauth, []string{"read_security"}
		want.AccessExpiresAt, want.RefreshExpiresAt = at.Add(time.Minute), at.Add(time.Hour)
		want.UpdatedAt, want.RefreshedAt = at, at
		if diff := cmp.Diff(got, want, sealedEqual()); diff != "" {
			t.Errorf("Update result (-got +want):\n%s", diff)
		}
		wantConnection(t, s, want)
		wantVehicles(t, s, u.ID, views(want, vs))
	})

	t.Run("Update/UnroundedTimes/ResultEqualsStored", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		seedGrant(t, s, c, 1)
		at := time.Now().In(time.FixedZone("UTC+1", 3600))
		got, err := s.Update(t.Context(), c.ID, func(x *domain.Connection) error {
			x.AccessExpiresAt, x.RefreshExpiresAt, x.UpdatedAt, x.RefreshedAt = at, at, at, at
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		wantConnection(t, s, got)
	})

	t.Run("Update/KeepsIDOwnerSmartcarUserAndCreationTime", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u, other := seedUser(t, users), seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		seedGrant(t, s, c, 1)
		got, err := s.Update(t.Context(), c.ID, func(x *domain.Connection) error {
			x.ID, x.UserID, x.SmartcarUserID = domain.NewConnectionID(), other.ID, "sc-user-other"
			x.CreatedAt = x.CreatedAt.Add(time.Hour)
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if diff := cmp.Diff(got, c, sealedEqual()); diff != "" {
			t.Errorf("Update result (-got +want):\n%s", diff)
		}
		wantConnection(t, s, c)
	})

	t.Run("Update/FnError/WritesNothingAndReturnsIt", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		vs := seedGrant(t, s, c, 1)
		_, err := s.Update(t.Context(), c.ID, func(x *domain.Connection) error {
			x.Tokens, x.Status, x.Scopes = newSealed(t, connectionKeyVersion), domain.ConnectionRevoked, nil
			x.RefreshedAt = x.RefreshedAt.Add(time.Hour)
			return errStaleTokens
		})
		if !errors.Is(err, errStaleTokens) {
			t.Fatalf("Update = %v, want fn's error", err)
		}
		wantConnection(t, s, c)
		wantVehicles(t, s, u.ID, views(c, vs))
	})

	t.Run("Update/InvalidResult/ReturnsKindInvalidAndWritesNothing", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		seedGrant(t, s, c, 1)
		for name, spoil := range map[string]func(*domain.Connection){
			"unknown status":     func(x *domain.Connection) { x.Status = "" },
			"scope with a comma": func(x *domain.Connection) { x.Scopes = []string{"a,b"} },
		} {
			_, err := s.Update(t.Context(), c.ID, func(x *domain.Connection) error {
				x.Tokens = newSealed(t, connectionKeyVersion)
				spoil(x)
				return nil
			})
			if domain.KindOf(err) != domain.KindInvalid {
				t.Errorf("Update to %s = %v, want a KindInvalid error", name, err)
			}
		}
		wantConnection(t, s, c)
	})

	t.Run("Update/ClearedTokens/AreDeleted", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		seedGrant(t, s, c, 1)
		got, err := s.Update(t.Context(), c.ID, func(x *domain.Connection) error {
			x.Tokens, x.Status = domain.SealedSecret{}, domain.ConnectionRevoked
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if !got.Tokens.IsZero() {
			t.Errorf("Update result has tokens %v, want none", got.Tokens)
		}
		want := c
		want.Tokens, want.Status = domain.SealedSecret{}, domain.ConnectionRevoked
		wantConnection(t, s, want)
	})

	t.Run("Update/Missing/ReturnsErrNotFoundWithoutCallingFn", func(t *testing.T) {
		t.Parallel()
		s, _ := newStores(t)
		for _, id := range []domain.ConnectionID{domain.NewConnectionID(), "not-a-uuid"} {
			_, err := s.Update(t.Context(), id, func(*domain.Connection) error {
				t.Errorf("fn called for missing connection %q", id)
				return nil
			})
			wantErr(t, err, domain.ErrNotFound)
		}
	})
}

func connectionUpdateConcurrent(t *testing.T, newStores NewConnectionStores) {
	t.Run("Update/ConcurrentRefreshesOfOneTokenSet/ExactlyOneRefreshes", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		seedGrant(t, s, c, 1)
		fresh := make([]domain.SealedSecret, parallelism)
		for i := range fresh {
			fresh[i] = newSealed(t, connectionKeyVersion)
		}
		errs := race(parallelism, func(i int) error {
			_, err := s.Update(t.Context(), c.ID, func(x *domain.Connection) error {
				if x.Tokens.Ciphertext() != c.Tokens.Ciphertext() {
					return errStaleTokens // re-read under the lock: someone refreshed already
				}
				x.Tokens = fresh[i]
				return nil
			})
			return err
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("Updates %d and %d both refreshed the same token set", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, errStaleTokens):
				t.Errorf("Update %d: %v, want nil or fn's error", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no concurrent refresh succeeded")
		}
		got, err := s.Get(t.Context(), c.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if got.Tokens.Ciphertext() != fresh[winner].Ciphertext() {
			t.Errorf("stored tokens are not the winner's")
		}
	})

	t.Run("Update/Concurrent/NoLostUpdate", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		seedGrant(t, s, c, 1)
		// Every Update moves the refresh time on by a second and re-seals under the next key
		// version, so both the row and the token set count the Updates that ran.
		errs := race(parallelism, func(int) error {
			_, err := s.Update(t.Context(), c.ID, func(x *domain.Connection) error {
				x.RefreshedAt = x.RefreshedAt.Add(time.Second)
				next, err := sealedUnder(x.Tokens.KeyVersion() + 1)
				x.Tokens = next
				return err
			})
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("Update %d: %v", i, err)
			}
		}
		got, err := s.Get(t.Context(), c.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if want := c.RefreshedAt.Add(parallelism * time.Second); !got.RefreshedAt.Equal(want) {
			t.Errorf("RefreshedAt = %v after %d increments, want %v", got.RefreshedAt, parallelism, want)
		}
		if want := connectionKeyVersion + parallelism; got.Tokens.KeyVersion() != want {
			t.Errorf("token key version = %d after %d increments, want %d", got.Tokens.KeyVersion(), parallelism, want)
		}
	})
}

func connectionDueForRefresh(t *testing.T, newStores NewConnectionStores) {
	t.Run("DueForRefresh/ActiveBeforeCutOldestFirstLimited", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		cut := time.Date(1971, 6, 1, 12, 0, 0, 0, time.UTC)
		seed := func(status domain.ConnectionStatus, refreshExpiresAt time.Time) domain.Connection {
			c := newConnection(t, u.ID, now(), connectionKeyVersion)
			c.Status, c.RefreshExpiresAt = status, refreshExpiresAt
			seedGrant(t, s, c, 1)
			return c
		}
		early := cut.Add(-72 * time.Hour)
		tieA, tieB := seed(domain.ConnectionActive, early), seed(domain.ConnectionActive, early)
		oldest := seed(domain.ConnectionActive, early.Add(-time.Hour))
		last := seed(domain.ConnectionActive, cut.Add(-time.Microsecond))
		seed(domain.ConnectionNeedsReauth, early.Add(-2*time.Hour))
		seed(domain.ConnectionRevoked, early.Add(-2*time.Hour))
		seed(domain.ConnectionActive, cut) // expires at, not before, the cut
		seed(domain.ConnectionActive, now().Add(domain.VehicleRefreshTokenLifetime))
		ties := []domain.ConnectionID{tieA.ID, tieB.ID}
		slices.Sort(ties)
		want := []domain.ConnectionID{oldest.ID, ties[0], ties[1], last.ID}

		for _, limit := range []int{100, len(want), 2, 0} {
			got, err := s.DueForRefresh(t.Context(), cut, limit)
			if err != nil {
				t.Fatalf("DueForRefresh(limit %d): %v", limit, err)
			}
			if diff := cmp.Diff(got, want[:min(limit, len(want))], cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("DueForRefresh(limit %d) (-got +want):\n%s", limit, diff)
			}
		}

		if _, err := s.Update(t.Context(), oldest.ID, func(x *domain.Connection) error {
			x.Status = domain.ConnectionNeedsReauth
			return nil
		}); err != nil {
			t.Fatalf("Update: %v", err)
		}
		if _, err := s.Update(t.Context(), tieA.ID, func(x *domain.Connection) error {
			x.RefreshExpiresAt = now().Add(domain.VehicleRefreshTokenLifetime) // refreshed
			return nil
		}); err != nil {
			t.Fatalf("Update: %v", err)
		}
		got, err := s.DueForRefresh(t.Context(), cut, 100)
		if err != nil {
			t.Fatalf("DueForRefresh: %v", err)
		}
		if diff := cmp.Diff(got, []domain.ConnectionID{tieB.ID, last.ID}); diff != "" {
			t.Errorf("DueForRefresh after updates (-got +want):\n%s", diff)
		}
	})
}
