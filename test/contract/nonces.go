package contract

import (
	"errors"
	"testing"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// NonceStore checks a ports.NonceStore against its doc comments. newStore is called once per
// subtest; the stores it returns may share one database as long as nothing else in it expires
// before 1972, the era the DeleteExpired subtest keeps to itself so its counts are exact.
func NonceStore(t *testing.T, newStore func(t *testing.T) ports.NonceStore) {
	put := func(t *testing.T, s ports.NonceStore, exp time.Time) domain.Nonce {
		t.Helper()
		n := domain.Nonce{Hash: randomHash(), ExpiresAt: exp}
		if err := s.Put(t.Context(), n); err != nil {
			t.Fatalf("Put: %v", err)
		}
		return n
	}

	t.Run("Consume/OnceOnly", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		at := now()
		n := put(t, s, at.Add(domain.NonceTTL))
		if err := s.Consume(t.Context(), n.Hash, at); err != nil {
			t.Fatalf("first Consume: %v", err)
		}
		wantErr(t, s.Consume(t.Context(), n.Hash, at), domain.ErrNotFound)
	})

	t.Run("Put/Duplicate/ReturnsErrConflict", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		at := now()
		n := put(t, s, at.Add(domain.NonceTTL))
		wantErr(t, s.Put(t.Context(), domain.Nonce{Hash: n.Hash, ExpiresAt: at.Add(time.Hour)}), domain.ErrConflict)
		if err := s.Consume(t.Context(), n.Hash, at); err != nil {
			t.Fatalf("Consume after duplicate Put: %v", err)
		}
	})

	t.Run("Consume/Unknown/ReturnsErrNotFound", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		wantErr(t, s.Consume(t.Context(), randomHash(), now()), domain.ErrNotFound)
	})

	t.Run("Consume/ExpiredAtNow/ReturnsErrNotFound", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		exp := now()
		for name, at := range map[string]time.Time{"at expiry": exp, "after expiry": exp.Add(time.Second)} {
			n := put(t, s, exp)
			if err := s.Consume(t.Context(), n.Hash, at); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("Consume %s = %v, want ErrNotFound", name, err)
			}
		}
		n := put(t, s, exp)
		if err := s.Consume(t.Context(), n.Hash, exp.Add(-time.Microsecond)); err != nil {
			t.Errorf("Consume a microsecond before expiry: %v", err)
		}
	})

	t.Run("Consume/Concurrent/ExactlyOneWins", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		at := now()
		n := put(t, s, at.Add(domain.NonceTTL))
		errs := race(parallelism, func(int) error { return s.Consume(t.Context(), n.Hash, at) })
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
		s := newStore(t)
		cut := time.Date(1971, 6, 1, 12, 0, 0, 0, time.UTC)
		var expired []domain.Nonce
		for _, d := range []time.Duration{-time.Hour, -time.Second, -time.Microsecond} {
			expired = append(expired, put(t, s, cut.Add(d)))
		}
		atCut := put(t, s, cut) // expires at, not before, the cut: kept
		live := put(t, s, now().Add(domain.NonceTTL))

		n, err := s.DeleteExpired(t.Context(), cut)
		if err != nil || n != len(expired) {
			t.Fatalf("DeleteExpired = %d, %v; want %d, nil", n, err, len(expired))
		}
		early := cut.Add(-2 * time.Hour) // a time at which every nonce above was still valid
		for i, x := range expired {
			if err := s.Consume(t.Context(), x.Hash, early); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("Consume expired nonce %d after DeleteExpired = %v, want ErrNotFound", i, err)
			}
		}
		for name, x := range map[string]domain.Nonce{"expiring at the cut": atCut, "live": live} {
			if err := s.Consume(t.Context(), x.Hash, early); err != nil {
				t.Errorf("Consume %s nonce after DeleteExpired: %v", name, err)
			}
		}
		if n, err := s.DeleteExpired(t.Context(), cut); err != nil || n != 0 {
			t.Errorf("second DeleteExpired = %d, %v; want 0, nil", n, err)
		}
	})
}
