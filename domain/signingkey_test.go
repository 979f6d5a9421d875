package domain_test

import (
	"testing"
	"time"

	"github.com/betterkey/backend/domain"
)

func TestSigningKeyRotation(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	seed := domain.SigningKey{ID: "conf", SignsFrom: time.Unix(0, 0)}
	r, err := domain.PlanSigningKeyRotation(t0, 20*time.Second, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	keys := r.Rotate([]domain.SigningKey{seed}, domain.SigningKey{ID: "k1"}, t0)
	want := []domain.SigningKeyState{domain.SigningKeySigning, domain.SigningKeyPending}
	if got := domain.SigningKeyStates(keys, t0); !equalStates(got, want) {
		t.Fatalf("states right after the rotation = %v, want %v", got, want)
	}
	at := t0.Add(20 * time.Second)
	if got, want := domain.SigningKeyStates(keys, at), []domain.SigningKeyState{domain.SigningKeyVerifying, domain.SigningKeySigning}; !equalStates(got, want) {
		t.Fatalf("states from SignsFrom = %v, want %v", got, want)
	}
	if got := domain.SigningKeyStates(keys, at.Add(15*time.Minute))[0]; got != domain.SigningKeyRetired {
		t.Fatalf("old key after the overlap = %s, want retired", got)
	}

	// An emergency rotation shortens an earlier overlap, never lengthens one.
	r2, _ := domain.PlanSigningKeyRotation(t0.Add(time.Minute), 20*time.Second, 0)
	keys = r2.Rotate(keys, domain.SigningKey{ID: "k2"}, t0.Add(time.Minute))
	if !keys[0].VerifiesUntil.Equal(t0.Add(80*time.Second)) || !keys[1].VerifiesUntil.Equal(t0.Add(80*time.Second)) {
		t.Fatalf("windows after an emergency rotation: %v, %v", keys[0].VerifiesUntil, keys[1].VerifiesUntil)
	}
	r3, _ := domain.PlanSigningKeyRotation(t0.Add(2*time.Minute), 20*time.Second, time.Hour)
	keys = r3.Rotate(keys, domain.SigningKey{ID: "k3"}, t0.Add(2*time.Minute))
	if !keys[0].VerifiesUntil.Equal(t0.Add(80 * time.Second)) {
		t.Fatalf("a later rotation lengthened a retired key's window to %v", keys[0].VerifiesUntil)
	}
	// Keys retired long ago are dropped by the next rotation.
	later := t0.Add(domain.SigningKeyKeep + 2*time.Hour)
	r4, _ := domain.PlanSigningKeyRotation(later, 0, 0)
	if keys = r4.Rotate(keys, domain.SigningKey{ID: "k4"}, later); len(keys) != 2 || keys[0].ID != "k3" {
		t.Fatalf("after pruning: %+v", keys)
	}
	for _, o := range []time.Duration{-time.Second, domain.MaxSigningKeyOverlap + time.Second} {
		if _, err := domain.PlanSigningKeyRotation(t0, 0, o); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("overlap %v: %v, want invalid", o, err)
		}
	}
	if domain.CurrentSigningKey(nil, t0) != -1 {
		t.Error("a signing key out of no keys")
	}
}

func equalStates(a, b []domain.SigningKeyState) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
