package contract

import (
	"cmp"
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// NewSealedSecretStores returns the key-management view of the secrets at rest together with the
// connection store that writes token sets into them and the user store whose accounts own them;
// all three must see the same data.
type NewSealedSecretStores func(t *testing.T) (ports.SealedSecretStore, ports.ConnectionStore, ports.UserStore)

// Key versions the subtests keep to themselves, so that they can count exactly in a shared
// database: the paging subtest owns versions 1 and 2, the counting subtest 901 and 902.
const (
	pagingVersion    = 1
	countingVersion  = 901
	replacingVersion = 500
)

// SealedSecretStore checks a ports.SealedSecretStore against its doc comments, seeding secrets
// through the ConnectionStore that owns them. newStores is called once per subtest; the stores
// may share one database as long as nothing else in it is sealed under key versions 1, 2, 901 or
// 902.
func SealedSecretStore(t *testing.T, newStores NewSealedSecretStores) {
	seed := func(t *testing.T, conns ports.ConnectionStore, user domain.UserID, version int) domain.Connection {
		t.Helper()
		c := newConnection(t, user, now(), version)
		seedGrant(t, conns, c, 1)
		return c
	}

	t.Run("KeyVersionCounts/CountsEverySecretAtRest", func(t *testing.T) {
		t.Parallel()
		s, conns, users := newStores(t)
		u := seedUser(t, users)
		var cs []domain.Connection
		for _, v := range []int{countingVersion, countingVersion, countingVersion, countingVersion + 1, countingVersion + 1} {
			cs = append(cs, seed(t, conns, u.ID, v))
		}
		wantCounts := func(step string, old, latest int) {
			t.Helper()
			got, err := s.KeyVersionCounts(t.Context())
			if err != nil {
				t.Fatalf("KeyVersionCounts: %v", err)
			}
			if got[countingVersion] != old || got[countingVersion+1] != latest {
				t.Errorf("KeyVersionCounts %s = %d, %d for versions %d, %d; want %d, %d", step,
					got[countingVersion], got[countingVersion+1], countingVersion, countingVersion+1, old, latest)
			}
		}
		wantCounts("after seeding", 3, 2)
		if _, err := conns.Update(t.Context(), cs[0].ID, func(x *domain.Connection) error {
			x.Tokens = newSealed(t, countingVersion+1) // a refresh seals under the latest version
			return nil
		}); err != nil {
			t.Fatalf("Update: %v", err)
		}
		wantCounts("after a refresh", 2, 3)
		vs, err := conns.Vehicles(t.Context(), u.ID)
		if err != nil {
			t.Fatalf("Vehicles: %v", err)
		}
		i := slices.IndexFunc(vs, func(v domain.VehicleView) bool { return v.ConnectionID == cs[3].ID })
		if _, err := conns.DeleteVehicle(t.Context(), u.ID, vs[i].ID); err != nil {
			t.Fatalf("DeleteVehicle: %v", err)
		}
		wantCounts("after removing a connection", 2, 2)
		if _, err := conns.Update(t.Context(), cs[1].ID, func(x *domain.Connection) error {
			x.Tokens = domain.SealedSecret{}
			return nil
		}); err != nil {
			t.Fatalf("Update: %v", err)
		}
		wantCounts("after clearing a token set", 1, 2)
	})

	t.Run("BelowVersion/PagesInBindingOrderAndResumes", func(t *testing.T) {
		t.Parallel()
		s, conns, users := newStores(t)
		var all []ports.StoredSecret
		for range 5 {
			u := seedUser(t, users)
			for range 5 {
				c := seed(t, conns, u.ID, pagingVersion)
				all = append(all, ports.StoredSecret{Binding: c.TokenBinding(), Sealed: c.Tokens})
			}
			seed(t, conns, u.ID, pagingVersion+1) // current already: never listed
		}
		slices.SortFunc(all, func(a, b ports.StoredSecret) int {
			return cmp.Or(cmp.Compare(a.Binding.Purpose, b.Binding.Purpose), cmp.Compare(a.Binding.UserID, b.Binding.UserID),
				cmp.Compare(a.Binding.ConnectionID, b.Binding.ConnectionID))
		})
		page := func(after domain.SecretBinding, limit int) []ports.StoredSecret {
			t.Helper()
			got, err := s.BelowVersion(t.Context(), pagingVersion+1, after, limit)
			if err != nil {
				t.Fatalf("BelowVersion: %v", err)
			}
			return got
		}
		wantPage := func(name string, got, want []ports.StoredSecret) {
			t.Helper()
			if diff := gocmp.Diff(got, want, sealedEqual(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s (-got +want):\n%s", name, diff)
			}
		}

		first := page(domain.SecretBinding{}, 10)
		wantPage("page 1", first, all[:10])
		wantPage("page 2", page(first[9].Binding, 10), all[10:20])
		wantPage("page 3", page(all[19].Binding, 10), all[20:])
		wantPage("past the end", page(all[24].Binding, 10), nil)
		wantPage("limit 0", page(domain.SecretBinding{}, 0), nil)
		wantPage("after a purpose only", page(domain.SecretBinding{Purpose: domain.PurposeSmartcarTokens}, 3), all[:3])
		wantPage("after a later purpose", page(domain.SecretBinding{Purpose: domain.PurposeSmartcarTokens + "~"}, 3), nil)
		if got, err := s.BelowVersion(t.Context(), pagingVersion, domain.SecretBinding{}, 10); err != nil || len(got) != 0 {
			t.Errorf("BelowVersion(%d) = %d secrets, %v; want none", pagingVersion, len(got), err)
		}
		bad := domain.SecretBinding{Purpose: domain.PurposeSmartcarTokens, UserID: "not-a-uuid"}
		if _, err := s.BelowVersion(t.Context(), pagingVersion+1, bad, 10); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("BelowVersion after a non-uuid user = %v, want a KindInvalid error", err)
		}

		// A job that upgraded page 1 and stopped resumes after its last binding, even when that
		// row has gone meanwhile (the connection was removed).
		for _, x := range first {
			if ok, err := replaceOne(t, s, x.Binding, x.Sealed, newSealed(t, pagingVersion+1)); err != nil || !ok {
				t.Fatalf("Replace = %v, %v; want true, nil", ok, err)
			}
		}
		last := first[9].Binding
		vs, err := conns.Vehicles(t.Context(), last.UserID)
		if err != nil {
			t.Fatalf("Vehicles: %v", err)
		}
		i := slices.IndexFunc(vs, func(v domain.VehicleView) bool { return string(v.ConnectionID) == last.ConnectionID })
		if removed, err := conns.DeleteVehicle(t.Context(), last.UserID, vs[i].ID); err != nil || !removed {
			t.Fatalf("DeleteVehicle = %v, %v; want true, nil", removed, err)
		}
		wantPage("resumed page 2", page(last, 10), all[10:20])
		wantPage("from the start after the upgrade", page(domain.SecretBinding{}, 100), all[10:])
	})

	t.Run("Replace/SwapsOnlyTheValueItWasGiven", func(t *testing.T) {
		t.Parallel()
		s, conns, users := newStores(t)
		u := seedUser(t, users)
		c := seed(t, conns, u.ID, replacingVersion)
		b := c.TokenBinding()
		next := newSealed(t, replacingVersion+1)
		if ok, err := replaceOne(t, s, b, c.Tokens, next); err != nil || !ok {
			t.Fatalf("Replace = %v, %v; want true, nil", ok, err)
		}
		want := c
		want.Tokens = next
		wantConnection(t, conns, want)

		refreshed, err := conns.Update(t.Context(), c.ID, func(x *domain.Connection) error {
			x.Tokens = newSealed(t, replacingVersion+1)
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		other := seed(t, conns, u.ID, replacingVersion)
		for name, q := range map[string]struct {
			b   domain.SecretBinding
			old domain.SealedSecret
		}{
			"the value it replaced":        {b, c.Tokens},
			"the value a refresh replaced": {b, next},
			"another row's value":          {b, other.Tokens},
			"a missing row":                {domain.SecretBinding{Purpose: b.Purpose, UserID: u.ID, ConnectionID: string(domain.NewConnectionID())}, c.Tokens},
			"another purpose":              {domain.SecretBinding{Purpose: "apple.refresh_token", UserID: u.ID, ConnectionID: b.ConnectionID}, refreshed.Tokens},
			"a non-uuid user":              {domain.SecretBinding{Purpose: b.Purpose, UserID: "not-a-uuid", ConnectionID: b.ConnectionID}, refreshed.Tokens},
		} {
			if ok, err := replaceOne(t, s, q.b, q.old, newSealed(t, replacingVersion+1)); err != nil || ok {
				t.Errorf("Replace of %s = %v, %v; want false, nil", name, ok, err)
			}
		}
		wantConnection(t, conns, refreshed)
		wantConnection(t, conns, other)

		if _, err := replaceOne(t, s, b, refreshed.Tokens, domain.SealedSecret{}); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("Replace with an empty value = %v, want a KindInvalid error", err)
		}
		wantConnection(t, conns, refreshed)
	})

	t.Run("Replace/AfterTheConnectionIsGone/ReturnsFalse", func(t *testing.T) {
		t.Parallel()
		s, conns, users := newStores(t)
		u := seedUser(t, users)
		c := seed(t, conns, u.ID, replacingVersion)
		vs, err := conns.Vehicles(t.Context(), u.ID)
		if err != nil || len(vs) != 1 {
			t.Fatalf("Vehicles = %d, %v; want 1, nil", len(vs), err)
		}
		if removed, err := conns.DeleteVehicle(t.Context(), u.ID, vs[0].ID); err != nil || !removed {
			t.Fatalf("DeleteVehicle = %v, %v; want true, nil", removed, err)
		}
		if ok, err := replaceOne(t, s, c.TokenBinding(), c.Tokens, newSealed(t, replacingVersion+1)); err != nil || ok {
			t.Errorf("Replace after the connection was removed = %v, %v; want false, nil", ok, err)
		}
		if _, err := conns.Get(t.Context(), c.ID); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("Get after Replace of a removed connection = %v, want ErrNotFound (no row revived)", err)
		}
	})

	t.Run("Replace/Batch/AnswersEachSwapInOrder", func(t *testing.T) {
		t.Parallel()
		s, conns, users := newStores(t)
		u := seedUser(t, users)
		cs := make([]domain.Connection, 4)
		for i := range cs {
			cs[i] = seed(t, conns, u.ID, replacingVersion)
		}
		refreshed, err := conns.Update(t.Context(), cs[1].ID, func(x *domain.Connection) error {
			x.Tokens = newSealed(t, replacingVersion+1)
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		fresh := func() domain.SealedSecret { return newSealed(t, replacingVersion+1) }
		swaps := []ports.SecretSwap{
			{Binding: cs[0].TokenBinding(), Old: cs[0].Tokens, Replacement: fresh()},
			{Binding: cs[1].TokenBinding(), Old: cs[1].Tokens, Replacement: fresh()}, // a refresh came first
			{Binding: domain.SecretBinding{Purpose: domain.PurposeSmartcarTokens, UserID: "not-a-uuid", ConnectionID: "x"}, Old: cs[2].Tokens, Replacement: fresh()},
			{Binding: cs[2].TokenBinding(), Old: cs[2].Tokens, Replacement: fresh()},
			{Binding: domain.SecretBinding{Purpose: domain.PurposeSmartcarTokens, UserID: u.ID, ConnectionID: string(domain.NewConnectionID())}, Old: cs[3].Tokens, Replacement: fresh()},
		}
		got, err := s.Replace(t.Context(), swaps)
		if err != nil {
			t.Fatalf("Replace: %v", err)
		}
		if diff := gocmp.Diff([]bool{true, false, false, true, false}, got); diff != "" {
			t.Errorf("Replace results (-want +got):\n%s", diff)
		}
		for i, want := range []domain.SealedSecret{swaps[0].Replacement, refreshed.Tokens, swaps[3].Replacement, cs[3].Tokens} {
			c := cs[i]
			c.Tokens = want
			if i == 1 {
				c = refreshed
			}
			wantConnection(t, conns, c)
		}

		if got, err := s.Replace(t.Context(), nil); err != nil || len(got) != 0 {
			t.Errorf("Replace of no swaps = %v, %v; want none, nil", got, err)
		}
		for name, bad := range map[string][]ports.SecretSwap{
			"an empty replacement": {{Binding: cs[3].TokenBinding(), Old: cs[3].Tokens, Replacement: fresh()},
				{Binding: cs[0].TokenBinding(), Old: swaps[0].Replacement}},
			"a repeated binding": {{Binding: cs[3].TokenBinding(), Old: cs[3].Tokens, Replacement: fresh()},
				{Binding: cs[3].TokenBinding(), Old: cs[3].Tokens, Replacement: fresh()}},
		} {
			if _, err := s.Replace(t.Context(), bad); domain.KindOf(err) != domain.KindInvalid {
				t.Errorf("Replace with %s = %v, want a KindInvalid error", name, err)
			}
		}
		wantConnection(t, conns, cs[3]) // nothing half-applied
	})

	t.Run("Replace/Concurrent/ExactlyOneSwaps", func(t *testing.T) {
		t.Parallel()
		s, conns, users := newStores(t)
		u := seedUser(t, users)
		c := seed(t, conns, u.ID, replacingVersion)
		fresh := make([]domain.SealedSecret, parallelism)
		for i := range fresh {
			fresh[i] = newSealed(t, replacingVersion+1)
		}
		swapped := make([]bool, parallelism)
		errs := race(parallelism, func(i int) error {
			var err error
			swapped[i], err = replaceOne(t, s, c.TokenBinding(), c.Tokens, fresh[i])
			return err
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err != nil:
				t.Errorf("Replace %d: %v", i, err)
			case swapped[i] && winner >= 0:
				t.Errorf("Replaces %d and %d both swapped the same value", winner, i)
			case swapped[i]:
				winner = i
			}
		}
		if winner < 0 {
			t.Fatal("no concurrent Replace swapped")
		}
		want := c
		want.Tokens = fresh[winner]
		wantConnection(t, conns, want)
	})
}

// replaceOne is Replace with a single swap.
func replaceOne(t *testing.T, s ports.SealedSecretStore, b domain.SecretBinding, old, replacement domain.SealedSecret) (bool, error) {
	swapped, err := s.Replace(t.Context(), []ports.SecretSwap{{Binding: b, Old: old, Replacement: replacement}})
	if err != nil {
		return false, err
	}
	if len(swapped) != 1 {
		t.Fatalf("Replace of one swap returned %d results", len(swapped))
	}
	return swapped[0], nil
}
