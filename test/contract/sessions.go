package contract

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// SessionStore checks a ports.SessionStore against its doc comments. newStores is called once
// per subtest and returns the session store with the user store whose accounts the sessions
// belong to (real databases enforce that the user exists); the stores may share one database.
func SessionStore(t *testing.T, newStores func(t *testing.T) (ports.SessionStore, ports.UserStore)) {
	sessionRetention(t, newStores)
	sessionCreate(t, newStores)
	sessionList(t, newStores)
	sessionListLive(t, newStores)
	sessionFindByRefresh(t, newStores)
	sessionUpdate(t, newStores)
	sessionUpdateConcurrent(t, newStores)
	sessionRevokeAll(t, newStores)
}

// seedUser stores a fresh account for the sessions of one subtest.
func seedUser(t *testing.T, users ports.UserStore) domain.User {
	t.Helper()
	u := newUser(now())
	if err := users.Create(t.Context(), u); err != nil {
		t.Fatalf("create user: %v", err)
	}
	return u
}

// seedSession stores a fresh session of user created at.
func seedSession(t *testing.T, s ports.SessionStore, user domain.UserID, at time.Time) domain.Session {
	t.Helper()
	x := newSession(user, at)
	if err := s.Create(t.Context(), x); err != nil {
		t.Fatalf("create session: %v", err)
	}
	return x
}

// wantStored fails unless Get returns want.
func wantStored(t *testing.T, s ports.SessionStore, want domain.Session) {
	t.Helper()
	got, err := s.Get(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("stored session (-got +want):\n%s", diff)
	}
}

// rotate replaces the session's refresh hash with a fresh one through Update.
func rotate(t *testing.T, s ports.SessionStore, id domain.SessionID, at time.Time) domain.Session {
	t.Helper()
	next := randomHash()
	x, err := s.Update(t.Context(), id, func(x *domain.Session) error {
		x.Rotate(next, at, domain.DefaultSessionLifetimes())
		return nil
	})
	if err != nil {
		t.Fatalf("Update (rotate): %v", err)
	}
	return x
}

// revoke signs the session out at at through Update.
func revoke(t *testing.T, s ports.SessionStore, id domain.SessionID, at time.Time) domain.Session {
	t.Helper()
	x, err := s.Update(t.Context(), id, func(x *domain.Session) error {
		x.Revoke(at, domain.RevokeSignOut)
		return nil
	})
	if err != nil {
		t.Fatalf("Update (revoke): %v", err)
	}
	return x
}

func sessionCreate(t *testing.T, newStores func(t *testing.T) (ports.SessionStore, ports.UserStore)) {
	t.Run("CreateThenGet/RoundTrips", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		active := seedSession(t, s, u.ID, now())
		wantStored(t, s, active)

		revoked := newSession(u.ID, now())
		revoked.Device, revoked.DeviceName = domain.DeviceWatch, ""
		revoked.Revoke(now().Add(time.Minute), domain.RevokeAdmin)
		if err := s.Create(t.Context(), revoked); err != nil {
			t.Fatalf("Create revoked: %v", err)
		}
		wantStored(t, s, revoked)
	})

	t.Run("Get/Missing/ReturnsErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, _ := newStores(t)
		for _, id := range []domain.SessionID{domain.NewSessionID(), "", "not-a-uuid"} {
			_, err := s.Get(t.Context(), id)
			wantErr(t, err, domain.ErrNotFound)
		}
	})

	t.Run("Create/DuplicateID/ReturnsErrConflict", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		first := seedSession(t, s, u.ID, now())
		second := newSession(u.ID, now())
		second.ID = first.ID
		wantErr(t, s.Create(t.Context(), second), domain.ErrConflict)
		wantStored(t, s, first)
		_, err := s.FindByRefresh(t.Context(), second.RefreshHash)
		wantErr(t, err, domain.ErrNotFound)
	})

	t.Run("Create/CurrentRefreshHashOfAnother/ReturnsErrConflict", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		first := seedSession(t, s, u.ID, now())
		second := newSession(u.ID, now())
		second.RefreshHash = first.RefreshHash
		wantErr(t, s.Create(t.Context(), second), domain.ErrConflict)
		_, err := s.Get(t.Context(), second.ID)
		wantErr(t, err, domain.ErrNotFound)
	})

	t.Run("Create/RotatedRefreshHash/ReturnsErrConflict", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		first := seedSession(t, s, u.ID, now())
		rotate(t, s, first.ID, now())
		second := newSession(u.ID, now())
		second.RefreshHash = first.RefreshHash // remembered for reuse detection, so taken
		wantErr(t, s.Create(t.Context(), second), domain.ErrConflict)
		_, err := s.Get(t.Context(), second.ID)
		wantErr(t, err, domain.ErrNotFound)
		id, err := s.FindByRefresh(t.Context(), first.RefreshHash)
		if err != nil || id != first.ID {
			t.Errorf("FindByRefresh(rotated) = %q, %v; want %q", id, err, first.ID)
		}
	})
}

func sessionList(t *testing.T, newStores func(t *testing.T) (ports.SessionStore, ports.UserStore)) {
	t.Run("ListByUser/NewestFirstIncludingRevoked", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u, other := seedUser(t, users), seedUser(t, users)
		base := now()
		oldest := seedSession(t, s, u.ID, base.Add(-2*time.Hour))
		newest := seedSession(t, s, u.ID, base)
		middle := seedSession(t, s, u.ID, base.Add(-time.Hour))
		seedSession(t, s, other.ID, base.Add(time.Hour))
		middle = revoke(t, s, middle.ID, base)
		got, err := s.ListByUser(t.Context(), u.ID)
		if err != nil {
			t.Fatalf("ListByUser: %v", err)
		}
		if diff := cmp.Diff(got, []domain.Session{newest, middle, oldest}); diff != "" {
			t.Errorf("ListByUser (-got +want):\n%s", diff)
		}
	})

	t.Run("ListByUser/NoSessions/ReturnsEmpty", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		for _, id := range []domain.UserID{u.ID, domain.NewUserID(), "not-a-uuid"} {
			got, err := s.ListByUser(t.Context(), id)
			if err != nil || len(got) != 0 {
				t.Errorf("ListByUser(%q) = %v, %v; want no sessions", id, got, err)
			}
		}
	})
}

// ListLive reads only what may still authenticate: revoked and idle-expired sessions are left
// out, the newest come first, and the limit holds.
func sessionListLive(t *testing.T, newStores func(t *testing.T) (ports.SessionStore, ports.UserStore)) {
	t.Run("ListLive/LeavesOutRevokedAndExpiredNewestFirstLimited", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u, other := seedUser(t, users), seedUser(t, users)
		base := now()
		oldest := seedSession(t, s, u.ID, base.Add(-3*time.Hour))
		middle := seedSession(t, s, u.ID, base.Add(-2*time.Hour))
		newest := seedSession(t, s, u.ID, base.Add(-time.Hour))
		revoked := seedSession(t, s, u.ID, base.Add(-30*time.Minute))
		revoke(t, s, revoked.ID, base)
		expired := domain.NewSession(u.ID, "install-idle", domain.DeviceWatch, "Watch", randomHash(), base.Add(-time.Hour),
			domain.SessionLifetimes{Access: time.Minute, Idle: 30 * time.Minute, Absolute: time.Hour})
		if err := s.Create(t.Context(), expired); err != nil {
			t.Fatalf("create expired session: %v", err)
		}
		seedSession(t, s, other.ID, base)
		got, err := s.ListLive(t.Context(), u.ID, base, 10)
		if err != nil {
			t.Fatalf("ListLive: %v", err)
		}
		if diff := cmp.Diff(got, []domain.Session{newest, middle, oldest}); diff != "" {
			t.Errorf("ListLive (-got +want):\n%s", diff)
		}
		got, err = s.ListLive(t.Context(), u.ID, base, 2)
		if err != nil || len(got) != 2 || got[0].ID != newest.ID || got[1].ID != middle.ID {
			t.Errorf("ListLive(limit 2) = %v, %v; want the two newest", got, err)
		}
		// At the exact idle expiry a session is no longer usable (domain.Session.Usable).
		got, err = s.ListLive(t.Context(), u.ID, expired.IdleExpiresAt.Add(-time.Microsecond), 10)
		if err != nil || len(got) != 4 {
			t.Errorf("ListLive just before the idle expiry = %d sessions, %v; want 4", len(got), err)
		}
		for _, id := range []domain.UserID{domain.NewUserID(), "not-a-uuid"} {
			if got, err := s.ListLive(t.Context(), id, base, 10); err != nil || len(got) != 0 {
				t.Errorf("ListLive(%q) = %v, %v; want none", id, got, err)
			}
		}
		if got, err := s.ListLive(t.Context(), u.ID, base, 0); err != nil || len(got) != 0 {
			t.Errorf("ListLive(limit 0) = %v, %v; want none", got, err)
		}
	})
}

func sessionFindByRefresh(t *testing.T, newStores func(t *testing.T) (ports.SessionStore, ports.UserStore)) {
	t.Run("FindByRefresh/CurrentAndEveryRotatedHash", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		x := seedSession(t, s, u.ID, now())
		seedSession(t, s, u.ID, now()) // a neighbour whose hashes must not match
		hashes := []domain.TokenHash{x.RefreshHash}
		for range 3 {
			hashes = append(hashes, rotate(t, s, x.ID, now()).RefreshHash)
		}
		for i, h := range hashes {
			id, err := s.FindByRefresh(t.Context(), h)
			if err != nil || id != x.ID {
				t.Errorf("FindByRefresh(hash %d) = %q, %v; want %q", i, id, err, x.ID)
			}
		}
	})

	t.Run("FindByRefresh/Unknown/ReturnsErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, _ := newStores(t)
		_, err := s.FindByRefresh(t.Context(), randomHash())
		wantErr(t, err, domain.ErrNotFound)
	})
}

func sessionRevokeAll(t *testing.T, newStores func(t *testing.T) (ports.SessionStore, ports.UserStore)) {
	t.Run("RevokeAllForUser/RevokesActiveOnlyAndCounts", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u, other := seedUser(t, users), seedUser(t, users)
		base := now()
		a := seedSession(t, s, u.ID, base.Add(-3*time.Minute))
		b := seedSession(t, s, u.ID, base.Add(-2*time.Minute))
		earlier := seedSession(t, s, u.ID, base.Add(-time.Minute))
		earlier = revoke(t, s, earlier.ID, base.Add(-time.Second))
		bystander := seedSession(t, s, other.ID, base)

		n, err := s.RevokeAllForUser(t.Context(), u.ID, base, domain.RevokeAppleConsent)
		if err != nil || n != 2 {
			t.Fatalf("RevokeAllForUser = %d, %v; want 2, nil", n, err)
		}
		a.Revoke(base, domain.RevokeAppleConsent)
		b.Revoke(base, domain.RevokeAppleConsent)
		for _, want := range []domain.Session{a, b, earlier, bystander} {
			wantStored(t, s, want)
		}

		n, err = s.RevokeAllForUser(t.Context(), u.ID, base.Add(time.Minute), domain.RevokeAdmin)
		if err != nil || n != 0 {
			t.Errorf("second RevokeAllForUser = %d, %v; want 0, nil", n, err)
		}
		wantStored(t, s, a)
	})

	t.Run("RevokeAllCreatedBefore/EveryUserActiveOnlyOlderOnly", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		// Far in the past, so that sessions of tests sharing the database are all newer.
		long := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		u, other := seedUser(t, users), seedUser(t, users)
		var older []domain.Session
		for i := range 3 {
			older = append(older, seedSession(t, s, []domain.UserID{u.ID, other.ID}[i%2], long.Add(time.Duration(i)*time.Second)))
		}
		gone, err := s.Update(t.Context(), seedSession(t, s, u.ID, long).ID, func(x *domain.Session) error {
			x.Revoke(long.Add(time.Minute), domain.RevokeSignOut)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		newer := seedSession(t, s, other.ID, long.Add(time.Hour))
		at := long.Add(2 * time.Hour)
		n, err := s.RevokeAllCreatedBefore(t.Context(), long.Add(time.Minute), at, domain.RevokeEmergency)
		if err != nil || n != 3 {
			t.Fatalf("RevokeAllCreatedBefore = %d, %v; want 3, nil", n, err)
		}
		for _, x := range older {
			x.Revoke(at, domain.RevokeEmergency)
			wantStored(t, s, x)
		}
		wantStored(t, s, gone)
		wantStored(t, s, newer)
	})

	t.Run("RevokeAllForUser/UnknownUser/RevokesNothing", func(t *testing.T) {
		t.Parallel()
		s, _ := newStores(t)
		for _, id := range []domain.UserID{domain.NewUserID(), "not-a-uuid"} {
			n, err := s.RevokeAllForUser(t.Context(), id, now(), domain.RevokeAdmin)
			if err != nil || n != 0 {
				t.Errorf("RevokeAllForUser(%q) = %d, %v; want 0, nil", id, n, err)
			}
		}
	})
}
