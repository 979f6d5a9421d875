package contract

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// errStale is what an Update closure returns when it finds the session already changed.
var errStale = errors.New("contract: session changed underneath")

func sessionUpdate(t *testing.T, newStores func(t *testing.T) (ports.SessionStore, ports.UserStore)) {
	t.Run("Update/SavesAndReturnsWhatGetReturns", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		x := seedSession(t, s, u.ID, now())
		at := now().Add(time.Hour)
		next := randomHash()
		got, err := s.Update(t.Context(), x.ID, func(y *domain.Session) error {
			if diff := cmp.Diff(*y, x); diff != "" {
				t.Errorf("fn got (-got +want):\n%s", diff)
			}
			y.Rotate(next, at, domain.DefaultSessionLifetimes())
			y.DeviceName = "Renamed"
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		want := x
		want.Rotate(next, at, domain.DefaultSessionLifetimes())
		want.DeviceName = "Renamed"
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("Update result (-got +want):\n%s", diff)
		}
		wantStored(t, s, want)
	})

	t.Run("Update/UnroundedTimes/ResultEqualsStored", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		x := seedSession(t, s, u.ID, now())
		at := time.Now().In(time.FixedZone("UTC+1", 3600)) // nanoseconds and a zone, as a caller may pass
		got, err := s.Update(t.Context(), x.ID, func(y *domain.Session) error {
			y.Revoke(at, domain.RevokeUser)
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		wantStored(t, s, got)
	})

	t.Run("Update/KeepsIDOwnerAndCreationTime", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u, other := seedUser(t, users), seedUser(t, users)
		x := seedSession(t, s, u.ID, now())
		got, err := s.Update(t.Context(), x.ID, func(y *domain.Session) error {
			y.ID, y.UserID, y.CreatedAt = domain.NewSessionID(), other.ID, y.CreatedAt.Add(time.Hour)
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if diff := cmp.Diff(got, x); diff != "" {
			t.Errorf("Update result (-got +want):\n%s", diff)
		}
		wantStored(t, s, x)
	})

	t.Run("Update/FnError/WritesNothingAndReturnsIt", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		x := seedSession(t, s, u.ID, now())
		next := randomHash()
		_, err := s.Update(t.Context(), x.ID, func(y *domain.Session) error {
			y.Rotate(next, now(), domain.DefaultSessionLifetimes())
			y.Revoke(now(), domain.RevokeRefreshReuse)
			return errStale
		})
		if !errors.Is(err, errStale) {
			t.Fatalf("Update = %v, want fn's error", err)
		}
		wantStored(t, s, x)
		_, err = s.FindByRefresh(t.Context(), next)
		wantErr(t, err, domain.ErrNotFound)
	})

	t.Run("Update/Missing/ReturnsErrNotFoundWithoutCallingFn", func(t *testing.T) {
		t.Parallel()
		s, _ := newStores(t)
		for _, id := range []domain.SessionID{domain.NewSessionID(), "not-a-uuid"} {
			_, err := s.Update(t.Context(), id, func(*domain.Session) error {
				t.Errorf("fn called for missing session %q", id)
				return nil
			})
			wantErr(t, err, domain.ErrNotFound)
		}
	})

	t.Run("Update/HashTakenByAnotherOrRotated/ReturnsErrConflict", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		neighbour := seedSession(t, s, u.ID, now())
		x := seedSession(t, s, u.ID, now())
		first := x.RefreshHash
		x = rotate(t, s, x.ID, now())
		for name, taken := range map[string]domain.TokenHash{"current of another": neighbour.RefreshHash, "own rotated": first} {
			_, err := s.Update(t.Context(), x.ID, func(y *domain.Session) error {
				y.Rotate(taken, now(), domain.DefaultSessionLifetimes())
				return nil
			})
			if !errors.Is(err, domain.ErrConflict) {
				t.Errorf("Update to the %s hash = %v, want ErrConflict", name, err)
			}
		}
		wantStored(t, s, x)
		wantStored(t, s, neighbour)
	})
}

func sessionUpdateConcurrent(t *testing.T, newStores func(t *testing.T) (ports.SessionStore, ports.UserStore)) {
	t.Run("Update/Concurrent/NoLostUpdate", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		x := newSession(u.ID, now())
		x.DeviceName = "0" // a counter every Update increments
		if err := s.Create(t.Context(), x); err != nil {
			t.Fatalf("Create: %v", err)
		}
		hashes := make([]domain.TokenHash, parallelism)
		errs := race(parallelism, func(i int) error {
			hashes[i] = randomHash()
			_, err := s.Update(t.Context(), x.ID, func(y *domain.Session) error {
				n, err := strconv.Atoi(y.DeviceName)
				if err != nil {
					return err
				}
				y.DeviceName = strconv.Itoa(n + 1)
				y.Rotate(hashes[i], now(), domain.DefaultSessionLifetimes())
				return nil
			})
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("Update %d: %v", i, err)
			}
		}
		got, err := s.Get(t.Context(), x.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if want := strconv.Itoa(parallelism); got.DeviceName != want {
			t.Errorf("counter = %s after %d concurrent increments, want %s", got.DeviceName, parallelism, want)
		}
		for i, h := range append(hashes, x.RefreshHash) {
			if id, err := s.FindByRefresh(t.Context(), h); err != nil || id != x.ID {
				t.Errorf("FindByRefresh(hash %d) = %q, %v; want %q", i, id, err, x.ID)
			}
		}
	})

	t.Run("Update/ConcurrentRotationsOfOneToken/OneWins", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		x := seedSession(t, s, u.ID, now())
		hashes := make([]domain.TokenHash, parallelism)
		errs := race(parallelism, func(i int) error {
			hashes[i] = randomHash()
			_, err := s.Update(t.Context(), x.ID, func(y *domain.Session) error {
				if y.RefreshHash != x.RefreshHash {
					return errStale
				}
				y.Rotate(hashes[i], now(), domain.DefaultSessionLifetimes())
				return nil
			})
			return err
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("Updates %d and %d both rotated the same token", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, errStale):
				t.Errorf("Update %d: %v, want nil or fn's error", i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("no concurrent rotation succeeded")
		}
		got, err := s.Get(t.Context(), x.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if got.RefreshHash != hashes[winner] {
			t.Errorf("stored hash is not the winner's")
		}
	})
}
