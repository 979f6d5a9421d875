package ports

import "context"

// JobLock lets a periodic job run on one replica at a time, so that every replica can schedule
// it and the fleet still runs it once.
type JobLock interface {
	// TryRun runs fn while holding the lock named name across every process that shares the
	// store, and reports whether it ran. When another holder has the lock it returns false at
	// once, without waiting. fn's error is returned.
	TryRun(ctx context.Context, name string, fn func(context.Context) error) (bool, error)
}
