package contract

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// ConnectStateStore checks a ports.ConnectStateStore against its doc comments. newStores is
// called once per subtest and returns the state store with the user store whose accounts the
// states and pending links belong to (real databases enforce that the user exists); the stores
// may share one database as long as nothing else in it expires before 1972, the era the
// DeleteExpired subtest keeps to itself so its counts are exact.
func ConnectStateStore(t *testing.T, newStores func(t *testing.T) (ports.ConnectStateStore, ports.UserStore)) {
	put := func(t *testing.T, s ports.ConnectStateStore, user domain.UserID, exp time.Time) domain.ConnectState {
		t.Helper()
		st := domain.ConnectState{Hash: randomHash(), UserID: user, ExpiresAt: exp}
		if err := s.Put(t.Context(), st); err != nil {
			t.Fatalf("Put: %v", err)
		}
		return st
	}
	putLink := func(t *testing.T, s ports.ConnectStateStore, user domain.UserID, exp time.Time) domain.PendingLink {
		t.Helper()
		l := domain.PendingLink{Hash: randomHash(), UserID: user, Code: sealedCode(t), ExpiresAt: exp}
		if err := s.PutPendingLink(t.Context(), l); err != nil {
			t.Fatalf("PutPendingLink: %v", err)
		}
		return l
	}

	t.Run("Consume/ReturnsTheStateOnceOnly", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		at := now()
		st := put(t, s, u.ID, at.Add(domain.ConnectStateTTL))
		got, err := s.Consume(t.Context(), st.Hash, at)
		if err != nil {
			t.Fatalf("first Consume: %v", err)
		}
		if diff := cmp.Diff(got, st); diff != "" {
			t.Errorf("Consume (-got +want):\n%s", diff)
		}
		_, err = s.Consume(t.Context(), st.Hash, at)
		wantErr(t, err, domain.ErrNotFound)
	})

	t.Run("Put/UnroundedExpiry/ConsumeReturnsStoredForm", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		exp := time.Now().Add(domain.ConnectStateTTL).In(time.FixedZone("UTC+1", 3600))
		st := domain.ConnectState{Hash: randomHash(), UserID: u.ID, ExpiresAt: exp}
		if err := s.Put(t.Context(), st); err != nil {
			t.Fatalf("Put: %v", err)
		}
		got, err := s.Consume(t.Context(), st.Hash, time.Now())
		if err != nil {
			t.Fatalf("Consume: %v", err)
		}
		if want := exp.UTC().Truncate(time.Microsecond); !got.ExpiresAt.Equal(want) || got.ExpiresAt.Location() != time.UTC {
			t.Errorf("ExpiresAt = %v, want %v in UTC", got.ExpiresAt, want)
		}
	})

	t.Run("Put/Duplicate/ReturnsErrConflict", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u, other := seedUser(t, users), seedUser(t, users)
		at := now()
		st := put(t, s, u.ID, at.Add(domain.ConnectStateTTL))
		wantErr(t, s.Put(t.Context(), domain.ConnectState{Hash: st.Hash, UserID: other.ID, ExpiresAt: at.Add(time.Hour)}), domain.ErrConflict)
		got, err := s.Consume(t.Context(), st.Hash, at)
		if err != nil {
			t.Fatalf("Consume after duplicate Put: %v", err)
		}
		if got.UserID != u.ID {
			t.Errorf("Consume after duplicate Put returned user %q, want the first Put's %q", got.UserID, u.ID)
		}
	})

	t.Run("Put/UserNotAUUID/ReturnsKindInvalid", func(t *testing.T) {
		t.Parallel()
		s, _ := newStores(t)
		err := s.Put(t.Context(), domain.ConnectState{Hash: randomHash(), UserID: "u1", ExpiresAt: now().Add(time.Minute)})
		if domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("Put for a non-uuid user = %v, want a KindInvalid error", err)
		}
	})

	t.Run("Consume/Unknown/ReturnsErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, _ := newStores(t)
		_, err := s.Consume(t.Context(), randomHash(), now())
		wantErr(t, err, domain.ErrNotFound)
	})

	t.Run("Consume/Expired/ReturnsErrNotFoundAndDeletes", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		exp := now()
		for name, at := range map[string]time.Time{"at expiry": exp, "after expiry": exp.Add(time.Second)} {
			st := put(t, s, u.ID, exp)
			if _, err := s.Consume(t.Context(), st.Hash, at); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("Consume %s = %v, want ErrNotFound", name, err)
			}
			if _, err := s.Consume(t.Context(), st.Hash, exp.Add(-time.Minute)); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("Consume %s, then again before expiry = %v, want ErrNotFound (deleted)", name, err)
			}
		}
		st := put(t, s, u.ID, exp)
		if _, err := s.Consume(t.Context(), st.Hash, exp.Add(-time.Microsecond)); err != nil {
			t.Errorf("Consume a microsecond before expiry: %v", err)
		}
	})

	t.Run("Consume/Concurrent/ExactlyOneWins", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		at := now()
		st := put(t, s, u.ID, at.Add(domain.ConnectStateTTL))
		errs := race(parallelism, func(int) error {
			_, err := s.Consume(t.Context(), st.Hash, at)
			return err
		})
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, domain.ErrNotFound):
				t.Errorf("Consume: %v, want nil or ErrNotFound", err)
			}
		}
		if won != 1 {
			t.Errorf("%d of %d concurrent Consumes succeeded, want 1", won, parallelism)
		}
	})

	t.Run("DeleteExpired/RemovesOnlyExpiredAndCounts", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		cut := time.Date(1971, 6, 1, 12, 0, 0, 0, time.UTC)
		var expired []domain.ConnectState
		var expiredLinks []domain.PendingLink
		for _, d := range []time.Duration{-time.Hour, -time.Second, -time.Microsecond} {
			expired = append(expired, put(t, s, u.ID, cut.Add(d)))
			expiredLinks = append(expiredLinks, putLink(t, s, u.ID, cut.Add(d)))
		}
		atCut := put(t, s, u.ID, cut) // expires at, not before, the cut: kept
		live := put(t, s, u.ID, now().Add(domain.ConnectStateTTL))
		linkAtCut := putLink(t, s, u.ID, cut)
		liveLink := putLink(t, s, u.ID, now().Add(domain.PendingLinkTTL))

		n, err := s.DeleteExpired(t.Context(), cut)
		if want := len(expired) + len(expiredLinks); err != nil || n != want {
			t.Fatalf("DeleteExpired = %d, %v; want %d, nil", n, err, want)
		}
		early := cut.Add(-2 * time.Hour) // a time at which every state above was still valid
		for i, x := range expired {
			if _, err := s.Consume(t.Context(), x.Hash, early); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("Consume expired state %d after DeleteExpired = %v, want ErrNotFound", i, err)
			}
		}
		for name, x := range map[string]domain.ConnectState{"expiring at the cut": atCut, "live": live} {
			if _, err := s.Consume(t.Context(), x.Hash, early); err != nil {
				t.Errorf("Consume %s state after DeleteExpired: %v", name, err)
			}
		}
		for i, x := range expiredLinks {
			if _, err := s.ConsumePendingLink(t.Context(), x.Hash, early); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("ConsumePendingLink expired link %d after DeleteExpired = %v, want ErrNotFound", i, err)
			}
		}
		for name, x := range map[string]domain.PendingLink{"expiring at the cut": linkAtCut, "live": liveLink} {
			if _, err := s.ConsumePendingLink(t.Context(), x.Hash, early); err != nil {
				t.Errorf("ConsumePendingLink %s link after DeleteExpired: %v", name, err)
			}
		}
		if n, err := s.DeleteExpired(t.Context(), cut); err != nil || n != 0 {
			t.Errorf("second DeleteExpired = %d, %v; want 0, nil", n, err)
		}
	})

	pendingLinks(t, newStores, putLink)
}

// pendingLinks checks the pending-link half of a ports.ConnectStateStore.
func pendingLinks(t *testing.T, newStores func(t *testing.T) (ports.ConnectStateStore, ports.UserStore),
	putLink func(*testing.T, ports.ConnectStateStore, domain.UserID, time.Time) domain.PendingLink) {
	t.Run("ConsumePendingLink/ReturnsTheLinkOnceOnly", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		at := now()
		l := putLink(t, s, u.ID, at.Add(domain.PendingLinkTTL))
		got, err := s.ConsumePendingLink(t.Context(), l.Hash, at)
		if err != nil {
			t.Fatalf("first ConsumePendingLink: %v", err)
		}
		if diff := cmp.Diff(got, l, cmp.Comparer(func(a, b domain.SealedSecret) bool { return a.Ciphertext() == b.Ciphertext() })); diff != "" {
			t.Errorf("ConsumePendingLink (-got +want):\n%s", diff)
		}
		_, err = s.ConsumePendingLink(t.Context(), l.Hash, at)
		wantErr(t, err, domain.ErrNotFound)
	})

	t.Run("PutPendingLink/Duplicate/ReturnsErrConflict", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u, other := seedUser(t, users), seedUser(t, users)
		at := now()
		l := putLink(t, s, u.ID, at.Add(domain.PendingLinkTTL))
		dup := domain.PendingLink{Hash: l.Hash, UserID: other.ID, Code: sealedCode(t), ExpiresAt: at.Add(time.Hour)}
		wantErr(t, s.PutPendingLink(t.Context(), dup), domain.ErrConflict)
		got, err := s.ConsumePendingLink(t.Context(), l.Hash, at)
		if err != nil || got.UserID != u.ID || got.Code.Ciphertext() != l.Code.Ciphertext() {
			t.Errorf("ConsumePendingLink after duplicate Put = %+v, %v; want the first Put's link", got, err)
		}
	})

	t.Run("PutPendingLink/Invalid/ReturnsKindInvalid", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		exp := now().Add(time.Minute)
		for name, l := range map[string]domain.PendingLink{
			"user not a uuid": {Hash: randomHash(), UserID: "u1", Code: sealedCode(t), ExpiresAt: exp},
			"no code":         {Hash: randomHash(), UserID: u.ID, ExpiresAt: exp},
		} {
			if err := s.PutPendingLink(t.Context(), l); domain.KindOf(err) != domain.KindInvalid {
				t.Errorf("PutPendingLink with %s = %v, want a KindInvalid error", name, err)
			}
		}
	})

	t.Run("ConsumePendingLink/Unknown/ReturnsErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, _ := newStores(t)
		_, err := s.ConsumePendingLink(t.Context(), randomHash(), now())
		wantErr(t, err, domain.ErrNotFound)
	})

	t.Run("ConsumePendingLink/StateHash/ReturnsErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		at := now()
		st := domain.ConnectState{Hash: randomHash(), UserID: u.ID, ExpiresAt: at.Add(domain.ConnectStateTTL)}
		if err := s.Put(t.Context(), st); err != nil {
			t.Fatalf("Put: %v", err)
		}
		_, err := s.ConsumePendingLink(t.Context(), st.Hash, at)
		wantErr(t, err, domain.ErrNotFound)
		if _, err := s.Consume(t.Context(), st.Hash, at); err != nil {
			t.Errorf("Consume the state after ConsumePendingLink of its hash: %v", err)
		}
	})

	t.Run("ConsumePendingLink/Expired/ReturnsErrNotFoundAndDeletes", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		exp := now()
		for name, at := range map[string]time.Time{"at expiry": exp, "after expiry": exp.Add(time.Second)} {
			l := putLink(t, s, u.ID, exp)
			if _, err := s.ConsumePendingLink(t.Context(), l.Hash, at); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("ConsumePendingLink %s = %v, want ErrNotFound", name, err)
			}
			if _, err := s.ConsumePendingLink(t.Context(), l.Hash, exp.Add(-time.Minute)); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("ConsumePendingLink %s, then again before expiry = %v, want ErrNotFound (deleted)", name, err)
			}
		}
		l := putLink(t, s, u.ID, exp)
		if _, err := s.ConsumePendingLink(t.Context(), l.Hash, exp.Add(-time.Microsecond)); err != nil {
			t.Errorf("ConsumePendingLink a microsecond before expiry: %v", err)
		}
	})

	t.Run("ConsumePendingLink/Concurrent/ExactlyOneWins", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		at := now()
		l := putLink(t, s, u.ID, at.Add(domain.PendingLinkTTL))
		errs := race(parallelism, func(int) error {
			_, err := s.ConsumePendingLink(t.Context(), l.Hash, at)
			return err
		})
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, domain.ErrNotFound):
				t.Errorf("ConsumePendingLink: %v, want nil or ErrNotFound", err)
			}
		}
		if won != 1 {
			t.Errorf("%d of %d concurrent ConsumePendingLinks succeeded, want 1", won, parallelism)
		}
	})
}

// sealedCode is a stand-in sealed authorization code; the store keeps it opaque.
func sealedCode(t *testing.T) domain.SealedSecret {
	t.Helper()
	c, err := domain.ParseSealed("test:v1:" + randomHex(16))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
