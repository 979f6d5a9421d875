package contract

import (
	"errors"
	"testing"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// The retention deletes see the whole table, so their subtests do not run in parallel: they run
// before the parallel subtests start and meet only their own rows, which makes the counts exact.

// sessionRetention checks DeleteEnded and DeleteRotatedBefore: only what ended (or was rotated)
// before the cut-off goes, in batches of at most limit, and live sessions never do.
func sessionRetention(t *testing.T, newStores func(t *testing.T) (ports.SessionStore, ports.UserStore)) {
	t.Run("DeleteEnded/OnlyEndedBeforeTheCutInBatches", func(t *testing.T) {
		s, users := newStores(t)
		u := seedUser(t, users)
		cut := era(1960)
		var gone []domain.Session
		for i := range 3 { // revoked before the cut
			x := seedSession(t, s, u.ID, era(1950).Add(time.Duration(i)*time.Hour))
			revoke(t, s, x.ID, era(1951))
			gone = append(gone, x)
		}
		for i := range 2 { // idle expired before the cut, never revoked
			gone = append(gone, seedSession(t, s, u.ID, era(1955).Add(time.Duration(i)*time.Hour)))
		}
		rotated := gone[0]
		rotatedAway := rotated.RefreshHash
		rotate(t, s, rotated.ID, era(1950).Add(time.Minute)) // its history goes with it
		revokedLater := seedSession(t, s, u.ID, era(1950))
		revoke(t, s, revokedLater.ID, era(1961))
		endsLater := seedSession(t, s, u.ID, cut.Add(-24*time.Hour)) // idle expires 29 days after the cut
		live := seedSession(t, s, u.ID, now())

		if n, err := s.DeleteEnded(t.Context(), cut, 2); err != nil || n != 2 {
			t.Fatalf("DeleteEnded(limit 2) = %d, %v; want 2", n, err)
		}
		if n, err := s.DeleteEnded(t.Context(), cut, 100); err != nil || n != 3 {
			t.Fatalf("DeleteEnded = %d, %v; want the other 3", n, err)
		}
		if n, err := s.DeleteEnded(t.Context(), cut, 100); err != nil || n != 0 {
			t.Fatalf("DeleteEnded again = %d, %v; want 0", n, err)
		}
		for _, x := range gone {
			if _, err := s.Get(t.Context(), x.ID); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("Get(deleted session) = %v, want ErrNotFound", err)
			}
		}
		if _, err := s.FindByRefresh(t.Context(), rotatedAway); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("FindByRefresh(hash of a deleted session) = %v, want ErrNotFound", err)
		}
		for _, x := range []domain.Session{revokedLater, endsLater, live} {
			if _, err := s.Get(t.Context(), x.ID); err != nil {
				t.Errorf("Get(kept session): %v", err)
			}
		}
		if n, err := s.DeleteEnded(t.Context(), cut, 0); err != nil || n != 0 {
			t.Errorf("DeleteEnded(limit 0) = %d, %v", n, err)
		}
		revoke(t, s, endsLater.ID, era(1961)) // RevokeAllCreatedBefore counts the active sessions of the past
	})

	t.Run("DeleteRotatedBefore/InBatches", func(t *testing.T) {
		s, users := newStores(t)
		x := seedSession(t, s, seedUser(t, users).ID, now())
		for i := range 3 {
			rotate(t, s, x.ID, era(1976).Add(time.Duration(i)*time.Minute))
		}
		for i, want := range []int{2, 1, 0} {
			if n, err := s.DeleteRotatedBefore(t.Context(), era(1977), 2); err != nil || n != want {
				t.Fatalf("DeleteRotatedBefore(limit 2) #%d = %d, %v; want %d", i+1, n, err, want)
			}
		}
	})

	t.Run("DeleteRotatedBefore/ForgetsOldRotatedHashesOnly", func(t *testing.T) {
		s, users := newStores(t)
		u := seedUser(t, users)
		x := seedSession(t, s, u.ID, now())
		first := x.RefreshHash
		second := rotate(t, s, x.ID, era(1975)).RefreshHash // first rotated away in 1975
		third := rotate(t, s, x.ID, now()).RefreshHash      // second rotated away now
		if n, err := s.DeleteRotatedBefore(t.Context(), era(1980), 100); err != nil || n != 1 {
			t.Fatalf("DeleteRotatedBefore = %d, %v; want 1", n, err)
		}
		if _, err := s.FindByRefresh(t.Context(), first); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("FindByRefresh(forgotten hash) = %v, want ErrNotFound", err)
		}
		for _, h := range []domain.TokenHash{second, third} {
			if id, err := s.FindByRefresh(t.Context(), h); err != nil || id != x.ID {
				t.Errorf("FindByRefresh(kept hash) = %q, %v; want %q", id, err, x.ID)
			}
		}
		if n, err := s.DeleteRotatedBefore(t.Context(), now().Add(time.Hour), 100); err != nil || n != 1 {
			t.Errorf("DeleteRotatedBefore(after every rotation) = %d, %v; want 1: never the current hash", n, err)
		}
		if id, err := s.FindByRefresh(t.Context(), third); err != nil || id != x.ID {
			t.Errorf("FindByRefresh(current hash) = %q, %v; want %q", id, err, x.ID)
		}
	})
}

// commandRetention checks DeleteFinished and DeleteAuditBefore.
func commandRetention(t *testing.T, newStores NewCommandStores) {
	t.Run("DeleteFinished/OnlyFinishedBeforeTheCutInBatches", func(t *testing.T) {
		s, conns, users := newStores(t)
		f := seedFleetIn(t, s, conns, users, 3)
		cut := era(1950)
		expire := func(c domain.Command) {
			t.Helper()
			if _, err := s.Update(t.Context(), c.ID, func(x *domain.Command) error { return x.Expire(c.CreatedAt) }); err != nil {
				t.Fatal(err)
			}
		}
		var gone []domain.Command
		for i := range 3 {
			c := f.command(i, domain.CommandLock, era(1940).Add(time.Duration(i)*time.Minute))
			c.IdempotencyKey = "old-" + randomHex(8)
			c = f.admit(t, c)
			expire(c)
			gone = append(gone, c)
		}
		inFlight := f.admit(t, f.command(0, domain.CommandUnlock, era(1941))) // its lease ran out long ago, it stays
		later := f.admit(t, f.command(1, domain.CommandUnlock, era(1951)))
		expire(later)

		if n, err := s.DeleteFinished(t.Context(), cut, 2); err != nil || n != 2 {
			t.Fatalf("DeleteFinished(limit 2) = %d, %v; want 2", n, err)
		}
		if n, err := s.DeleteFinished(t.Context(), cut, 100); err != nil || n != 1 {
			t.Fatalf("DeleteFinished = %d, %v; want the last 1", n, err)
		}
		for _, c := range gone {
			if _, err := s.Get(t.Context(), c.ID); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("Get(deleted command) = %v, want ErrNotFound", err)
			}
			if _, err := s.ByIdempotencyKey(t.Context(), f.user, c.IdempotencyKey); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("ByIdempotencyKey(deleted command) = %v, want ErrNotFound", err)
			}
		}
		for _, c := range []domain.Command{inFlight, later} {
			if _, err := s.Get(t.Context(), c.ID); err != nil {
				t.Errorf("Get(kept command): %v", err)
			}
		}
	})

	t.Run("DeleteAuditBefore/OnlyEntriesOfOldCommands", func(t *testing.T) {
		s, conns, users := newStores(t)
		f := seedFleetIn(t, s, conns, users, 1)
		for _, at := range []time.Time{era(1940), era(1940).Add(time.Hour), era(1960)} {
			c := f.admit(t, f.command(0, domain.CommandLock, at))
			if _, err := s.Update(t.Context(), c.ID, func(x *domain.Command) error { return x.Expire(at) }); err != nil {
				t.Fatal(err)
			}
		}
		if entries, err := s.ArchiveHistory(t.Context(), f.user, now()); err != nil || len(entries) != 3 {
			t.Fatalf("ArchiveHistory = %d, %v", len(entries), err)
		}
		if n, err := s.DeleteAuditBefore(t.Context(), era(1950), 1); err != nil || n != 1 {
			t.Fatalf("DeleteAuditBefore(limit 1) = %d, %v; want 1", n, err)
		}
		if n, err := s.DeleteAuditBefore(t.Context(), era(1950), 100); err != nil || n != 1 {
			t.Fatalf("DeleteAuditBefore = %d, %v; want 1", n, err)
		}
		if n, err := s.DeleteAuditBefore(t.Context(), era(1950), 100); err != nil || n != 0 {
			t.Fatalf("DeleteAuditBefore again = %d, %v; want 0: the 1960 entry stays", n, err)
		}
	})
}
