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

// connectionKeyVersion is the key version the ConnectionStore suite seals under; version 1 is
// the SealedSecretStore suite's paging subtest's own.
const connectionKeyVersion = 7

// NewConnectionStores returns a connection store with the user store whose accounts the
// connections belong to (real databases enforce that the user exists).
type NewConnectionStores func(t *testing.T) (ports.ConnectionStore, ports.UserStore)

// ConnectionStore checks a ports.ConnectionStore against its doc comments. newStores is called
// once per subtest; the stores may share one database as long as nothing else in it is due for
// a refresh before 1972, the era the DueForRefresh subtest keeps to itself so its lists are exact.
func ConnectionStore(t *testing.T, newStores NewConnectionStores) {
	connectionSaveGrant(t, newStores)
	connectionSaveGrantRejects(t, newStores)
	connectionUpdate(t, newStores)
	connectionUpdateConcurrent(t, newStores)
	connectionDueForRefresh(t, newStores)
	connectionVehicles(t, newStores)
	connectionDeleteVehicle(t, newStores)
	connectionSaveStatus(t, newStores)
}

// sealedEqual compares sealed values by their stored form, the only form a store keeps.
func sealedEqual() cmp.Option {
	return cmp.Comparer(func(a, b domain.SealedSecret) bool { return a.Ciphertext() == b.Ciphertext() })
}

// newSealed returns a well-formed sealed value under version, different from every other.
func newSealed(t *testing.T, version int) domain.SealedSecret {
	t.Helper()
	s, err := sealedUnder(version)
	if err != nil {
		t.Fatalf("ParseSealed: %v", err)
	}
	return s
}

// sealedUnder is newSealed for goroutines, which must not stop the test.
func sealedUnder(version int) (domain.SealedSecret, error) {
	return domain.ParseSealed("test:v" + strconv.Itoa(version) + ":" + randomHex(24))
}

// newConnection returns an active connection of user with fresh ids and tokens sealed under
// version, created at.
func newConnection(t *testing.T, user domain.UserID, at time.Time, version int) domain.Connection {
	t.Helper()
	return domain.Connection{
		ID: domain.NewConnectionID(), UserID: user, SmartcarUserID: "sc-user-" + randomHex(8),
		Status: domain.ConnectionActive, Scopes: domain.DefaultConnectScopes(), Tokens: newSealed(t, version),
		AccessExpiresAt: at.Add(domain.VehicleAccessTokenLifetime), RefreshExpiresAt: at.Add(domain.VehicleRefreshTokenLifetime),
		CreatedAt: at, UpdatedAt: at, RefreshedAt: at,
	}
}

// newVehicles returns n vehicles with fresh ids created a microsecond apart from at, oldest first;
// their owner and connection are left for SaveGrant to fill in.
func newVehicles(n int, at time.Time) []domain.Vehicle {
	out := make([]domain.Vehicle, n)
	for i := range out {
		out[i] = domain.Vehicle{
			ID: domain.NewVehicleID(), SmartcarID: "sc-vehicle-" + randomHex(8),
			Make: "TESLA", Model: "Model " + strconv.Itoa(i+1), Year: 2020 + i,
			CreatedAt: at.Add(time.Duration(i) * time.Microsecond),
		}
	}
	return out
}

// owned returns vs as SaveGrant stores them for c.
func owned(c domain.Connection, vs []domain.Vehicle) []domain.Vehicle {
	out := make([]domain.Vehicle, len(vs))
	for i, v := range vs {
		v.UserID, v.ConnectionID = c.UserID, c.ID
		out[i] = v
	}
	return out
}

// views returns what Vehicles lists for vs of c without a cached status.
func views(c domain.Connection, vs []domain.Vehicle) []domain.VehicleView {
	out := make([]domain.VehicleView, len(vs))
	for i, v := range vs {
		out[i] = domain.VehicleView{Vehicle: v, ConnectionStatus: c.Status, Scopes: c.Scopes}
	}
	return out
}

// seedGrant stores c with n fresh vehicles and returns them as stored.
func seedGrant(t *testing.T, s ports.ConnectionStore, c domain.Connection, n int) []domain.Vehicle {
	t.Helper()
	got, err := s.SaveGrant(t.Context(), c, newVehicles(n, c.CreatedAt))
	if err != nil {
		t.Fatalf("SaveGrant: %v", err)
	}
	return got
}

// wantConnection fails unless Get and BySmartcarUser both return want.
func wantConnection(t *testing.T, s ports.ConnectionStore, want domain.Connection) {
	t.Helper()
	got, err := s.Get(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if diff := cmp.Diff(got, want, sealedEqual()); diff != "" {
		t.Errorf("Get (-got +want):\n%s", diff)
	}
	got, err = s.BySmartcarUser(t.Context(), want.UserID, want.SmartcarUserID)
	if err != nil {
		t.Fatalf("BySmartcarUser: %v", err)
	}
	if diff := cmp.Diff(got, want, sealedEqual()); diff != "" {
		t.Errorf("BySmartcarUser (-got +want):\n%s", diff)
	}
}

// wantVehicles fails unless Vehicles(user) returns want.
func wantVehicles(t *testing.T, s ports.ConnectionStore, user domain.UserID, want []domain.VehicleView) {
	t.Helper()
	got, err := s.Vehicles(t.Context(), user)
	if err != nil {
		t.Fatalf("Vehicles: %v", err)
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Vehicles (-got +want):\n%s", diff)
	}
}

func connectionSaveGrant(t *testing.T, newStores NewConnectionStores) {
	t.Run("SaveGrant/New/StoresConnectionTokensAndVehicles", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		in := newVehicles(2, c.CreatedAt)
		got, err := s.SaveGrant(t.Context(), c, in)
		if err != nil {
			t.Fatalf("SaveGrant: %v", err)
		}
		want := owned(c, in)
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("SaveGrant (-got +want):\n%s", diff)
		}
		wantConnection(t, s, c)
		wantVehicles(t, s, u.ID, views(c, want))
	})

	t.Run("SaveGrant/UnroundedTimes/StoredInUTCMicroseconds", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		at := time.Now().In(time.FixedZone("UTC+1", 3600)) // nanoseconds and a zone, as a caller may pass
		c := newConnection(t, u.ID, at, connectionKeyVersion)
		vs := seedGrant(t, s, c, 1)
		round := func(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
		want := c
		want.AccessExpiresAt, want.RefreshExpiresAt = round(c.AccessExpiresAt), round(c.RefreshExpiresAt)
		want.CreatedAt, want.UpdatedAt, want.RefreshedAt = round(at), round(at), round(at)
		wantConnection(t, s, want)
		got, err := s.Vehicle(t.Context(), u.ID, vs[0].ID)
		if err != nil {
			t.Fatalf("Vehicle: %v", err)
		}
		if !got.CreatedAt.Equal(vs[0].CreatedAt) || !got.CreatedAt.Equal(round(at)) {
			t.Errorf("vehicle CreatedAt = %v, SaveGrant said %v, want %v", got.CreatedAt, vs[0].CreatedAt, round(at))
		}
	})

	t.Run("SaveGrant/SameSmartcarUser/ReplacesTokensAndMergesVehicles", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		first := newConnection(t, u.ID, now(), connectionKeyVersion)
		first.Status = domain.ConnectionNeedsReauth
		had := seedGrant(t, s, first, 2)

		again := first
		at := now().Add(time.Hour)
		again.Status, again.Scopes, again.Tokens = domain.ConnectionActive, []string{"required:control_security"}, newSealed(t, connectionKeyVersion)
		again.AccessExpiresAt, again.RefreshExpiresAt = at.Add(domain.VehicleAccessTokenLifetime), at.Add(domain.VehicleRefreshTokenLifetime)
		again.CreatedAt, again.UpdatedAt, again.RefreshedAt = at, at, at // a fresh grant knows no better
		kept := newVehicles(1, at)[0]
		kept.SmartcarID, kept.Make = had[1].SmartcarID, "Tesla" // seen again, with a fresh id and new attributes
		added := newVehicles(1, at)[0]
		got, err := s.SaveGrant(t.Context(), again, []domain.Vehicle{kept, added})
		if err != nil {
			t.Fatalf("second SaveGrant: %v", err)
		}
		if got[0].ID != had[1].ID || !got[0].CreatedAt.Equal(had[1].CreatedAt) {
			t.Errorf("vehicle seen again got id %q created %v, want its stored %q created %v",
				got[0].ID, got[0].CreatedAt, had[1].ID, had[1].CreatedAt)
		}
		if got[0].Make != "Tesla" || got[0].Model != kept.Model || got[0].Year != kept.Year {
			t.Errorf("vehicle seen again = %s %s %d, want the new attributes %s %s %d",
				got[0].Make, got[0].Model, got[0].Year, "Tesla", kept.Model, kept.Year)
		}
		if got[1].ID != added.ID {
			t.Errorf("new vehicle got id %q, want the given %q", got[1].ID, added.ID)
		}
		want := again
		want.CreatedAt = first.CreatedAt
		wantConnection(t, s, want)
		wantVehicles(t, s, u.ID, views(want, []domain.Vehicle{had[0], got[0], owned(want, []domain.Vehicle{added})[0]}))
	})

	t.Run("SaveGrant/SameSmartcarUserOtherID/ReturnsErrConflictAndChangesNothing", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		vs := seedGrant(t, s, c, 1)
		other := newConnection(t, u.ID, now(), connectionKeyVersion)
		other.SmartcarUserID = c.SmartcarUserID
		_, err := s.SaveGrant(t.Context(), other, newVehicles(1, now()))
		wantErr(t, err, domain.ErrConflict)
		wantConnection(t, s, c)
		wantVehicles(t, s, u.ID, views(c, vs))
	})

	t.Run("SaveGrant/IDOfAnotherConnection/ReturnsErrConflict", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u, stranger := seedUser(t, users), seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		vs := seedGrant(t, s, c, 1)
		for name, user := range map[string]domain.UserID{"same user": u.ID, "another user": stranger.ID} {
			clash := newConnection(t, user, now(), connectionKeyVersion)
			clash.ID = c.ID
			if _, err := s.SaveGrant(t.Context(), clash, newVehicles(1, now())); !errors.Is(err, domain.ErrConflict) {
				t.Errorf("SaveGrant reusing a connection id for %s = %v, want ErrConflict", name, err)
			}
		}
		clash := newConnection(t, u.ID, now(), connectionKeyVersion)
		reused := newVehicles(1, now())
		reused[0].ID = vs[0].ID
		_, err := s.SaveGrant(t.Context(), clash, reused)
		wantErr(t, err, domain.ErrConflict)
		if _, err := s.Get(t.Context(), clash.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Get after a conflicting vehicle id = %v, want ErrNotFound (nothing stored)", err)
		}
		wantConnection(t, s, c)
		wantVehicles(t, s, u.ID, views(c, vs))
		wantVehicles(t, s, stranger.ID, nil)
	})

	t.Run("SaveGrant/SameSmartcarUserForTwoUsers/KeepsThemApart", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u, v := seedUser(t, users), seedUser(t, users)
		cu := newConnection(t, u.ID, now(), connectionKeyVersion)
		cv := newConnection(t, v.ID, now(), connectionKeyVersion)
		cv.SmartcarUserID = cu.SmartcarUserID
		vu, vv := seedGrant(t, s, cu, 1), seedGrant(t, s, cv, 1)
		wantConnection(t, s, cu)
		wantConnection(t, s, cv)
		wantVehicles(t, s, u.ID, views(cu, vu))
		wantVehicles(t, s, v.ID, views(cv, vv))
	})

	t.Run("Get/Missing/ReturnsErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		seedGrant(t, s, c, 1)
		for _, id := range []domain.ConnectionID{domain.NewConnectionID(), "not-a-uuid", ""} {
			_, err := s.Get(t.Context(), id)
			wantErr(t, err, domain.ErrNotFound)
		}
		for _, q := range []struct {
			user domain.UserID
			sc   string
		}{{u.ID, "sc-user-unknown"}, {domain.NewUserID(), c.SmartcarUserID}, {"not-a-uuid", c.SmartcarUserID}} {
			_, err := s.BySmartcarUser(t.Context(), q.user, q.sc)
			wantErr(t, err, domain.ErrNotFound)
		}
	})
}
