package contract

import (
	"errors"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// signingKeyVersion is the key version the suite seals signing keys under.
const signingKeyVersion = 700

// SigningKeyStore checks a ports.SigningKeyStore against its doc comments, and that the secrets
// store of the same database sees the keys' material, which is what lets the rewrap job upgrade
// it. The signing keys are one set per database, so the store must be fresh and the subtests run
// in order.
func SigningKeyStore(t *testing.T, keys ports.SigningKeyStore, secrets ports.SealedSecretStore) {
	ctx := t.Context()
	t0 := now()
	key := func(signsFrom time.Time) domain.SigningKey {
		return domain.SigningKey{ID: domain.NewSigningKeyID(), Sealed: newSealed(t, signingKeyVersion),
			SignsFrom: signsFrom, CreatedAt: now()}
	}
	set := func(t *testing.T, want []domain.SigningKey) error {
		t.Helper()
		return keys.UpdateSigningKeys(ctx, func([]domain.SigningKey) ([]domain.SigningKey, error) { return want, nil })
	}
	read := func(t *testing.T) []domain.SigningKey {
		t.Helper()
		got, err := keys.SigningKeys(ctx)
		if err != nil {
			t.Fatalf("SigningKeys: %v", err)
		}
		return got
	}
	a, b := key(time.Unix(0, 0).UTC()), key(t0.Add(20*time.Second))

	t.Run("EmptyAtFirst", func(t *testing.T) {
		if got := read(t); len(got) != 0 {
			t.Fatalf("SigningKeys = %v, want none", got)
		}
	})
	t.Run("UpdatePersistsTheDecidedSetInSigningOrder", func(t *testing.T) {
		if err := set(t, []domain.SigningKey{b, a}); err != nil {
			t.Fatalf("UpdateSigningKeys: %v", err)
		}
		if diff := gocmp.Diff([]domain.SigningKey{a, b}, read(t), sealedEqual()); diff != "" {
			t.Fatalf("SigningKeys (-want +got):\n%s", diff)
		}
	})
	t.Run("UpdateChangesWindowsNotMaterialAndDeletesWhatIsLeftOut", func(t *testing.T) {
		var seen []domain.SigningKey
		capped := a
		capped.VerifiesUntil = t0.Add(time.Minute)
		capped.Sealed = newSealed(t, signingKeyVersion) // only the rewrap job changes material
		err := keys.UpdateSigningKeys(ctx, func(cur []domain.SigningKey) ([]domain.SigningKey, error) {
			seen = cur
			return []domain.SigningKey{capped}, nil
		})
		if err != nil {
			t.Fatalf("UpdateSigningKeys: %v", err)
		}
		if len(seen) != 2 {
			t.Fatalf("decide saw %d keys, want 2", len(seen))
		}
		want := a
		want.VerifiesUntil = capped.VerifiesUntil
		if diff := gocmp.Diff([]domain.SigningKey{want}, read(t), sealedEqual()); diff != "" {
			t.Fatalf("SigningKeys (-want +got):\n%s", diff)
		}
	})
	t.Run("RefusalsChangeNothing", func(t *testing.T) {
		before := read(t)
		boom := errors.New("decided against it")
		err := keys.UpdateSigningKeys(ctx, func([]domain.SigningKey) ([]domain.SigningKey, error) { return []domain.SigningKey{b}, boom })
		if !errors.Is(err, boom) {
			t.Errorf("UpdateSigningKeys with a failing decide = %v, want its error", err)
		}
		if err := set(t, []domain.SigningKey{b, {ID: "", Sealed: b.Sealed}}); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("UpdateSigningKeys with a key without id = %v, want KindInvalid", err)
		}
		if err := set(t, []domain.SigningKey{b, {ID: domain.NewSigningKeyID()}}); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("UpdateSigningKeys with a key without material = %v, want KindInvalid", err)
		}
		if diff := gocmp.Diff(before, read(t), sealedEqual()); diff != "" {
			t.Fatalf("a refused update changed the keys (-before +after):\n%s", diff)
		}
	})
	t.Run("ConcurrentUpdatesSerialise", func(t *testing.T) {
		errs := race(parallelism, func(int) error {
			return keys.UpdateSigningKeys(ctx, func(cur []domain.SigningKey) ([]domain.SigningKey, error) {
				return append(cur, key(t0)), nil
			})
		})
		for _, err := range errs {
			if err != nil {
				t.Fatalf("UpdateSigningKeys: %v", err)
			}
		}
		if got := len(read(t)); got != 1+parallelism {
			t.Fatalf("%d keys after %d concurrent additions to 1, want %d: an update was lost", got, parallelism, 1+parallelism)
		}
	})
	t.Run("TheSecretsStoreRewrapsTheMaterial", func(t *testing.T) {
		cur := read(t)
		counts, err := secrets.KeyVersionCounts(ctx)
		if err != nil {
			t.Fatalf("KeyVersionCounts: %v", err)
		}
		if counts[signingKeyVersion] != len(cur) {
			t.Errorf("KeyVersionCounts[%d] = %d, want the %d signing keys", signingKeyVersion, counts[signingKeyVersion], len(cur))
		}
		var listed []ports.StoredSecret
		var after domain.SecretBinding
		for { // page by 3, as the rewrap job pages
			page, err := secrets.BelowVersion(ctx, signingKeyVersion+1, after, 3)
			if err != nil {
				t.Fatalf("BelowVersion: %v", err)
			}
			if len(page) == 0 {
				break
			}
			listed = append(listed, page...)
			after = page[len(page)-1].Binding
		}
		if len(listed) != len(cur) || !slices.IsSortedFunc(listed, func(x, y ports.StoredSecret) int { return domain.CompareBindings(x.Binding, y.Binding) }) {
			t.Fatalf("BelowVersion listed %d secrets (sorted: %v), want the %d signing keys in binding order", len(listed),
				slices.IsSortedFunc(listed, func(x, y ports.StoredSecret) int { return domain.CompareBindings(x.Binding, y.Binding) }), len(cur))
		}
		target := cur[0]
		fresh := newSealed(t, signingKeyVersion+1)
		swapped, err := secrets.Replace(ctx, []ports.SecretSwap{
			{Binding: domain.SigningKeyBinding(target.ID), Old: target.Sealed, Replacement: fresh},
			{Binding: domain.SigningKeyBinding(cur[1].ID), Old: newSealed(t, signingKeyVersion), Replacement: fresh},
		})
		if err != nil || !slices.Equal(swapped, []bool{true, false}) {
			t.Fatalf("Replace = %v, %v; want [true false] (the stale swap must not apply)", swapped, err)
		}
		got := read(t)
		if got[0].Sealed.Ciphertext() != fresh.Ciphertext() || got[1].Sealed.Ciphertext() != cur[1].Sealed.Ciphertext() {
			t.Fatal("SigningKeys does not show what Replace swapped, or shows a swap that should not apply")
		}
		if !got[0].SignsFrom.Equal(target.SignsFrom) || !got[0].VerifiesUntil.Equal(target.VerifiesUntil) {
			t.Error("Replace changed a signing key's window")
		}
	})
}
