package memory

import (
	"context"
	"sync"

	"github.com/betterkey/backend/ports"
)

// JobLock is an in-process ports.JobLock: one mutex per job name.
type JobLock struct{ locks sync.Map }

var _ ports.JobLock = (*JobLock)(nil)

// TryRun implements ports.JobLock.
func (l *JobLock) TryRun(ctx context.Context, name string, fn func(context.Context) error) (bool, error) {
	v, _ := l.locks.LoadOrStore(name, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	if !mu.TryLock() {
		return false, nil
	}
	defer mu.Unlock()
	return true, fn(ctx)
}
