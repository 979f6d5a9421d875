package wiring

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCachedPass: a pass stands for the ttl, a failure is never reused, and concurrent probes share
// one check.
func TestCachedPass(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var (
		checks atomic.Int32
		fail   atomic.Bool
	)
	probe := cachedPass(2*time.Second, func() time.Time { return now }, func(context.Context) error {
		checks.Add(1)
		if fail.Load() {
			return errors.New("vault sealed")
		}
		return nil
	})
	ctx := t.Context()

	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := probe(ctx); err != nil {
				t.Errorf("probe: %v", err)
			}
		})
	}
	wg.Wait()
	if n := checks.Load(); n != 1 {
		t.Fatalf("%d checks for 20 probes within the ttl, want 1", n)
	}

	now = now.Add(2 * time.Second) // the pass has expired
	fail.Store(true)
	for i := range 2 {
		if err := probe(ctx); err == nil {
			t.Fatalf("probe %d after the pass expired with the check failing: nil error", i)
		}
	}
	if n := checks.Load(); n != 3 {
		t.Fatalf("%d checks, want 3: a failure must not be cached", n)
	}

	fail.Store(false)
	if err := probe(ctx); err != nil || checks.Load() != 4 {
		t.Fatalf("probe after recovery: %v (%d checks), want a fresh passing check", err, checks.Load())
	}
}
