package contract

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/betterkey/backend/domain"
)

func connectionVehicles(t *testing.T, newStores NewConnectionStores) {
	t.Run("Vehicles/OwnOnlyOldestFirst", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u, other := seedUser(t, users), seedUser(t, users)
		at := now()
		a := newConnection(t, u.ID, at, connectionKeyVersion)
		b := newConnection(t, u.ID, at, connectionKeyVersion)
		b.Status = domain.ConnectionNeedsReauth
		va := seedGrant(t, s, a, 2) // created at, at+1µs
		vb, err := s.SaveGrant(t.Context(), b, []domain.Vehicle{
			{ID: domain.NewVehicleID(), SmartcarID: "sc-early", Make: "FORD", Model: "F-150", Year: 2022, CreatedAt: at.Add(-time.Hour)},
			{ID: domain.NewVehicleID(), SmartcarID: "sc-tie", Make: "FORD", Model: "Mach-E", Year: 2023, CreatedAt: at},
		})
		if err != nil {
			t.Fatalf("SaveGrant: %v", err)
		}
		seedGrant(t, s, newConnection(t, other.ID, at, connectionKeyVersion), 1)

		tie := []domain.VehicleView{views(a, va[:1])[0], views(b, vb[1:])[0]} // same creation time: by id
		slices.SortFunc(tie, func(x, y domain.VehicleView) int { return strings.Compare(string(x.ID), string(y.ID)) })
		want := append(append(views(b, vb[:1]), tie...), views(a, va[1:])...)
		wantVehicles(t, s, u.ID, want)
		for _, nobody := range []domain.UserID{domain.NewUserID(), "not-a-uuid"} {
			wantVehicles(t, s, nobody, nil)
		}
	})

	t.Run("Vehicles/CarryNoTokenMaterial", func(t *testing.T) {
		t.Parallel()
		if path := tokenField(reflect.TypeFor[domain.VehicleView](), "VehicleView"); path != "" {
			t.Errorf("%s can hold token material", path)
		}
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		vs := seedGrant(t, s, c, 1)
		list, err := s.Vehicles(t.Context(), u.ID)
		if err != nil {
			t.Fatalf("Vehicles: %v", err)
		}
		one, err := s.Vehicle(t.Context(), u.ID, vs[0].ID)
		if err != nil {
			t.Fatalf("Vehicle: %v", err)
		}
		_, payload, _ := strings.Cut(c.Tokens.Ciphertext()[len("test:"):], ":")
		for _, text := range []string{fmt.Sprintf("%#v", list), fmt.Sprintf("%#v", one)} {
			if strings.Contains(text, payload) {
				t.Errorf("vehicle view shows the sealed token set: %s", text)
			}
		}
	})

	t.Run("Vehicle/OwnOnly", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u, other := seedUser(t, users), seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		vs := seedGrant(t, s, c, 2)
		got, err := s.Vehicle(t.Context(), u.ID, vs[1].ID)
		if err != nil {
			t.Fatalf("Vehicle: %v", err)
		}
		if diff := cmp.Diff(got, views(c, vs[1:])[0]); diff != "" {
			t.Errorf("Vehicle (-got +want):\n%s", diff)
		}
		for name, q := range map[string]struct {
			user domain.UserID
			id   domain.VehicleID
		}{
			"another user's": {other.ID, vs[0].ID},
			"unknown":        {u.ID, domain.NewVehicleID()},
			"non-uuid id":    {u.ID, "not-a-uuid"},
			"non-uuid user":  {"not-a-uuid", vs[0].ID},
		} {
			if _, err := s.Vehicle(t.Context(), q.user, q.id); !errors.Is(err, domain.ErrNotFound) || domain.KindOf(err) != domain.KindNotFound {
				t.Errorf("Vehicle for %s vehicle = %v, want ErrNotFound", name, err)
			}
		}
	})

	connectionVehiclesBySmartcarID(t, newStores)
}

func connectionVehiclesBySmartcarID(t *testing.T, newStores NewConnectionStores) {
	t.Run("VehiclesBySmartcarID/AcrossUsersFilteredBySmartcarUser", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u, other := seedUser(t, users), seedUser(t, users)
		at := now()
		a := newConnection(t, u.ID, at, connectionKeyVersion)
		b := newConnection(t, other.ID, at, connectionKeyVersion)
		b.Status = domain.ConnectionRevoked
		shared := "sc-shared-" + randomHex(8) // one car linked by two owners' Smartcar accounts
		va, err := s.SaveGrant(t.Context(), a, []domain.Vehicle{
			{ID: domain.NewVehicleID(), SmartcarID: shared, Make: "TESLA", Model: "Model Y", Year: 2024, CreatedAt: at},
			{ID: domain.NewVehicleID(), SmartcarID: "sc-own-" + randomHex(8), Make: "TESLA", Model: "Model 3", Year: 2021, CreatedAt: at},
		})
		if err != nil {
			t.Fatalf("SaveGrant: %v", err)
		}
		vb, err := s.SaveGrant(t.Context(), b, []domain.Vehicle{
			{ID: domain.NewVehicleID(), SmartcarID: shared, Make: "TESLA", Model: "Model Y", Year: 2024, CreatedAt: at.Add(time.Second)},
		})
		if err != nil {
			t.Fatalf("SaveGrant: %v", err)
		}
		locked := true
		st := domain.VehicleStatus{VehicleID: va[0].ID, Locked: &locked, ObservedAt: at, FetchedAt: at, Source: domain.StatusWebhook}
		if ok, err := s.SaveStatus(t.Context(), st); err != nil || !ok {
			t.Fatalf("SaveStatus = %v, %v", ok, err)
		}
		both := append(views(a, va[:1]), views(b, vb)...)
		both[0].Status = &st
		for name, q := range map[string]struct {
			user string
			want []domain.VehicleView
		}{
			"any smartcar user":   {"", both},
			"first owner's":       {a.SmartcarUserID, both[:1]},
			"second owner's":      {b.SmartcarUserID, both[1:]},
			"unknown smartcar id": {"sc-user-" + randomHex(8), nil},
		} {
			got, err := s.VehiclesBySmartcarID(t.Context(), shared, q.user)
			if err != nil {
				t.Fatalf("VehiclesBySmartcarID (%s): %v", name, err)
			}
			if diff := cmp.Diff(got, q.want, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("VehiclesBySmartcarID (%s) (-got +want):\n%s", name, diff)
			}
		}
		for _, missing := range []string{"sc-nobody-" + randomHex(8), ""} {
			if got, err := s.VehiclesBySmartcarID(t.Context(), missing, ""); err != nil || len(got) != 0 {
				t.Errorf("VehiclesBySmartcarID(%q) = %v, %v; want none", missing, got, err)
			}
		}
	})
}

// tokenField returns the path to a field of t that can hold a secret or a sealed value, or "".
func tokenField(t reflect.Type, path string) string {
	switch t {
	case reflect.TypeFor[domain.SealedSecret](), reflect.TypeFor[domain.Secret](), reflect.TypeFor[domain.TokenSet]():
		return path
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return tokenField(t.Elem(), path+"[]")
	case reflect.Struct:
		for i := range t.NumField() {
			if p := tokenField(t.Field(i).Type, path+"."+t.Field(i).Name); p != "" {
				return p
			}
		}
	}
	return ""
}

func connectionDeleteVehicle(t *testing.T, newStores NewConnectionStores) {
	t.Run("DeleteVehicle/LastRemovesConnection", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		vs := seedGrant(t, s, c, 2)
		removed, err := s.DeleteVehicle(t.Context(), u.ID, vs[0].ID)
		if err != nil || removed {
			t.Fatalf("DeleteVehicle (not the last) = %v, %v; want false, nil", removed, err)
		}
		wantConnection(t, s, c)
		wantVehicles(t, s, u.ID, views(c, vs[1:]))

		removed, err = s.DeleteVehicle(t.Context(), u.ID, vs[1].ID)
		if err != nil || !removed {
			t.Fatalf("DeleteVehicle (the last) = %v, %v; want true, nil", removed, err)
		}
		_, err = s.Get(t.Context(), c.ID)
		wantErr(t, err, domain.ErrNotFound)
		_, err = s.BySmartcarUser(t.Context(), u.ID, c.SmartcarUserID)
		wantErr(t, err, domain.ErrNotFound)
		wantVehicles(t, s, u.ID, nil)
		_, err = s.Update(t.Context(), c.ID, func(*domain.Connection) error { return nil })
		wantErr(t, err, domain.ErrNotFound)

		again := newConnection(t, u.ID, now(), connectionKeyVersion) // reconnecting starts afresh
		again.SmartcarUserID = c.SmartcarUserID
		seedGrant(t, s, again, 1)
		wantConnection(t, s, again)
	})

	t.Run("DeleteVehicle/NotTheUsers/ReturnsErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u, other := seedUser(t, users), seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		vs := seedGrant(t, s, c, 1)
		for name, q := range map[string]struct {
			user domain.UserID
			id   domain.VehicleID
		}{
			"another user's": {other.ID, vs[0].ID},
			"unknown":        {u.ID, domain.NewVehicleID()},
			"non-uuid id":    {u.ID, "not-a-uuid"},
		} {
			if _, err := s.DeleteVehicle(t.Context(), q.user, q.id); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("DeleteVehicle of %s vehicle = %v, want ErrNotFound", name, err)
			}
		}
		wantConnection(t, s, c)
		wantVehicles(t, s, u.ID, views(c, vs))
	})

	t.Run("DeleteVehicle/ConcurrentDeletesOfAll/ExactlyOneRemovesConnection", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		vs := seedGrant(t, s, c, parallelism)
		removed := make([]bool, parallelism)
		errs := race(parallelism, func(i int) error {
			var err error
			removed[i], err = s.DeleteVehicle(t.Context(), u.ID, vs[i].ID)
			return err
		})
		n := 0
		for i, err := range errs {
			if err != nil {
				t.Errorf("DeleteVehicle %d: %v", i, err)
			}
			if removed[i] {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d of %d concurrent deletes removed the connection, want 1", n, parallelism)
		}
		_, err := s.Get(t.Context(), c.ID)
		wantErr(t, err, domain.ErrNotFound)
		wantVehicles(t, s, u.ID, nil)
	})
}

func connectionSaveStatus(t *testing.T, newStores NewConnectionStores) {
	t.Run("SaveStatus/RoundTripsInTheViews", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		vs := seedGrant(t, s, c, 2)
		locked := true
		at := time.Now().In(time.FixedZone("UTC+1", 3600)) // unrounded, as a caller may pass
		st := domain.VehicleStatus{
			VehicleID: vs[0].ID, Locked: &locked,
			Doors:      []domain.Opening{{Type: "frontLeft", Status: domain.OpeningClosed}, {Type: "rearRight", Status: "LOCKED"}},
			Windows:    []domain.Opening{{Type: "frontLeft", Status: domain.OpeningOpen}},
			ObservedAt: at.Add(-time.Minute), FetchedAt: at, Source: domain.StatusLive,
		}
		partial := domain.VehicleStatus{VehicleID: vs[1].ID, ObservedAt: now(), FetchedAt: now(), Source: domain.StatusWebhook}
		for _, x := range []domain.VehicleStatus{st, partial} {
			if ok, err := s.SaveStatus(t.Context(), x); err != nil || !ok {
				t.Fatalf("SaveStatus = %v, %v; want true, nil", ok, err)
			}
		}
		locked = false // the store must have kept its own copy
		wantSt := st
		stillLocked := true
		wantSt.Locked = &stillLocked
		wantSt.ObservedAt, wantSt.FetchedAt = st.ObservedAt.UTC().Truncate(time.Microsecond), at.UTC().Truncate(time.Microsecond)
		want := views(c, vs)
		want[0].Status, want[1].Status = &wantSt, &partial
		wantVehicles(t, s, u.ID, want)
		got, err := s.Vehicle(t.Context(), u.ID, vs[0].ID)
		if err != nil {
			t.Fatalf("Vehicle: %v", err)
		}
		if diff := cmp.Diff(got, want[0]); diff != "" {
			t.Errorf("Vehicle (-got +want):\n%s", diff)
		}
	})

	t.Run("SaveStatus/NewestObservationWins", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		vs := seedGrant(t, s, c, 1)
		at := now()
		status := func(observed time.Time, locked bool, src domain.StatusSource) domain.VehicleStatus {
			return domain.VehicleStatus{VehicleID: vs[0].ID, Locked: &locked, ObservedAt: observed, FetchedAt: now(), Source: src}
		}
		stored := status(at, true, domain.StatusLive)
		steps := []struct {
			name string
			st   domain.VehicleStatus
			want bool
		}{
			{"first", stored, true},
			{"older", status(at.Add(-time.Second), false, domain.StatusWebhook), false},
			{"equal time", status(at, false, domain.StatusCommand), false},
			{"a microsecond newer", status(at.Add(time.Microsecond), false, domain.StatusCommand), true},
		}
		for _, step := range steps {
			ok, err := s.SaveStatus(t.Context(), step.st)
			if err != nil || ok != step.want {
				t.Fatalf("SaveStatus (%s) = %v, %v; want %v, nil", step.name, ok, err, step.want)
			}
			if ok {
				stored = step.st
			}
			got, err := s.Vehicle(t.Context(), u.ID, vs[0].ID)
			if err != nil {
				t.Fatalf("Vehicle: %v", err)
			}
			if diff := cmp.Diff(got.Status, &stored); diff != "" {
				t.Errorf("status after the %s observation (-got +want):\n%s", step.name, diff)
			}
		}
	})

	t.Run("SaveStatus/Concurrent/NewestWins", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		c := newConnection(t, u.ID, now(), connectionKeyVersion)
		vs := seedGrant(t, s, c, 1)
		at := now()
		newest := at.Add((parallelism - 1) * time.Second)
		errs := race(parallelism, func(i int) error {
			_, err := s.SaveStatus(t.Context(), domain.VehicleStatus{
				VehicleID: vs[0].ID, ObservedAt: at.Add(time.Duration(i) * time.Second), FetchedAt: at, Source: domain.StatusWebhook,
			})
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("SaveStatus %d: %v", i, err)
			}
		}
		got, err := s.Vehicle(t.Context(), u.ID, vs[0].ID)
		if err != nil {
			t.Fatalf("Vehicle: %v", err)
		}
		if got.Status == nil || !got.Status.ObservedAt.Equal(newest) {
			t.Errorf("status after concurrent saves = %+v, want the one observed at %v", got.Status, newest)
		}
	})

	t.Run("SaveStatus/UnknownVehicleOrNoTime/Refused", func(t *testing.T) {
		t.Parallel()
		s, users := newStores(t)
		u := seedUser(t, users)
		vs := seedGrant(t, s, newConnection(t, u.ID, now(), connectionKeyVersion), 1)
		for _, id := range []domain.VehicleID{domain.NewVehicleID(), "not-a-uuid"} {
			_, err := s.SaveStatus(t.Context(), domain.VehicleStatus{VehicleID: id, ObservedAt: now(), Source: domain.StatusLive})
			wantErr(t, err, domain.ErrNotFound)
		}
		_, err := s.SaveStatus(t.Context(), domain.VehicleStatus{VehicleID: vs[0].ID, Source: domain.StatusLive})
		if domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("SaveStatus without an observation time = %v, want a KindInvalid error", err)
		}
		got, err := s.Vehicle(t.Context(), u.ID, vs[0].ID)
		if err != nil || got.Status != nil {
			t.Errorf("Vehicle after refused saves = status %+v, %v; want no status", got.Status, err)
		}
	})
}
