package contract

import (
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// NewAppleGrantStores returns an Apple grant store with the user store whose accounts own the
// grants and the secrets-at-rest view that must see them; all three share one database.
type NewAppleGrantStores func(t *testing.T) (ports.AppleGrantStore, ports.UserStore, ports.SealedSecretStore)

// appleGrantVersion is the key version the grants of this suite are sealed under, so a shared
// database's other suites never count them.
const appleGrantVersion = 700

// AppleGrantStore checks a ports.AppleGrantStore against its doc comments.
func AppleGrantStore(t *testing.T, newStores NewAppleGrantStores) {
	grant := func(user domain.UserID, client string, at time.Time) domain.AppleGrant {
		return domain.AppleGrant{UserID: user, ClientID: client, RefreshToken: newSealed(t, appleGrantVersion), CreatedAt: at}
	}
	list := func(t *testing.T, s ports.AppleGrantStore, user domain.UserID) []domain.AppleGrant {
		t.Helper()
		gs, err := s.AppleGrants(t.Context(), user)
		if err != nil {
			t.Fatalf("AppleGrants: %v", err)
		}
		return gs
	}

	t.Run("Put/ReplacesPerClient", func(t *testing.T) {
		t.Parallel()
		s, users, _ := newStores(t)
		u, other := seedUser(t, users), seedUser(t, users)
		at := now()
		watch, phone := grant(u.ID, "com.betterkey.app.watchkitapp", at), grant(u.ID, "com.betterkey.app", at)
		for _, g := range []domain.AppleGrant{watch, phone, grant(other.ID, "com.betterkey.app", at)} {
			if err := s.PutAppleGrant(t.Context(), g); err != nil {
				t.Fatalf("PutAppleGrant: %v", err)
			}
		}
		if diff := gocmp.Diff([]domain.AppleGrant{phone, watch}, list(t, s, u.ID), sealedEqual()); diff != "" {
			t.Errorf("AppleGrants (-want +got):\n%s", diff)
		}
		again := grant(u.ID, "com.betterkey.app", at.Add(time.Hour))
		if err := s.PutAppleGrant(t.Context(), again); err != nil {
			t.Fatalf("PutAppleGrant again: %v", err)
		}
		if diff := gocmp.Diff([]domain.AppleGrant{again, watch}, list(t, s, u.ID), sealedEqual()); diff != "" {
			t.Errorf("AppleGrants after a new sign-in on the phone (-want +got):\n%s", diff)
		}
		if got := list(t, s, domain.NewUserID()); len(got) != 0 {
			t.Errorf("AppleGrants of an unknown user = %v, want none", got)
		}
	})

	t.Run("Put/Rejects", func(t *testing.T) {
		t.Parallel()
		s, users, _ := newStores(t)
		u := seedUser(t, users)
		if err := s.PutAppleGrant(t.Context(), grant(domain.NewUserID(), "com.betterkey.app", now())); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("PutAppleGrant for a missing user = %v, want a KindNotFound error", err)
		}
		for name, g := range map[string]domain.AppleGrant{
			"no client id":     {UserID: u.ID, RefreshToken: newSealed(t, appleGrantVersion), CreatedAt: now()},
			"no refresh token": {UserID: u.ID, ClientID: "com.betterkey.app", CreatedAt: now()},
			"no user":          {ClientID: "com.betterkey.app", RefreshToken: newSealed(t, appleGrantVersion), CreatedAt: now()},
		} {
			if err := s.PutAppleGrant(t.Context(), g); domain.KindOf(err) != domain.KindInvalid {
				t.Errorf("PutAppleGrant with %s = %v, want a KindInvalid error", name, err)
			}
		}
		if got := list(t, s, u.ID); len(got) != 0 {
			t.Errorf("AppleGrants after refused puts = %v, want none", got)
		}
	})

	t.Run("Delete/OnlyTheTokenItWasGiven", func(t *testing.T) {
		t.Parallel()
		s, users, _ := newStores(t)
		u := seedUser(t, users)
		old := grant(u.ID, "com.betterkey.app", now())
		if err := s.PutAppleGrant(t.Context(), old); err != nil {
			t.Fatal(err)
		}
		newer := grant(u.ID, "com.betterkey.app", now())
		if err := s.PutAppleGrant(t.Context(), newer); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.DeleteAppleGrant(t.Context(), old); err != nil || ok {
			t.Errorf("DeleteAppleGrant of a replaced token = %v, %v; want false, nil", ok, err)
		}
		if got := list(t, s, u.ID); len(got) != 1 {
			t.Fatalf("AppleGrants after a stale delete = %d grants, want the newer one kept", len(got))
		}
		if ok, err := s.DeleteAppleGrant(t.Context(), newer); err != nil || !ok {
			t.Errorf("DeleteAppleGrant = %v, %v; want true, nil", ok, err)
		}
		if ok, err := s.DeleteAppleGrant(t.Context(), newer); err != nil || ok {
			t.Errorf("DeleteAppleGrant again = %v, %v; want false, nil", ok, err)
		}
		if got := list(t, s, u.ID); len(got) != 0 {
			t.Errorf("AppleGrants after delete = %v, want none", got)
		}
	})

	t.Run("SecretsAtRest/RewrapCoversGrants", func(t *testing.T) {
		t.Parallel()
		s, users, secrets := newStores(t)
		u := seedUser(t, users)
		g := grant(u.ID, "com.betterkey.app", now())
		if err := s.PutAppleGrant(t.Context(), g); err != nil {
			t.Fatal(err)
		}
		// The page starts at this user's first binding; other subtests' grants may follow it.
		below, err := secrets.BelowVersion(t.Context(), appleGrantVersion+1, domain.SecretBinding{Purpose: domain.PurposeAppleRefreshToken, UserID: u.ID}, 1)
		if err != nil {
			t.Fatalf("BelowVersion: %v", err)
		}
		if len(below) != 1 || below[0].Binding != g.Binding() {
			t.Fatalf("BelowVersion = %v, want the grant under %v", below, g.Binding())
		}
		next := newSealed(t, appleGrantVersion+1)
		swapped, err := secrets.Replace(t.Context(), []ports.SecretSwap{{Binding: g.Binding(), Old: g.RefreshToken, Replacement: next}})
		if err != nil || !swapped[0] {
			t.Fatalf("Replace = %v, %v; want [true], nil", swapped, err)
		}
		g.RefreshToken = next
		if diff := gocmp.Diff([]domain.AppleGrant{g}, list(t, s, u.ID), sealedEqual()); diff != "" {
			t.Errorf("AppleGrants after rewrap (-want +got):\n%s", diff)
		}
	})
}
