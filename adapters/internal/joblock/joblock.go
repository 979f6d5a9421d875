// Package joblock is the in-process ports.JobLock: a mutex per job name. The memory fake is one,
// and the SQLite store uses it, since the file database serves a single process.
package joblock

import (
	"context"
	"sync"
)

// Local is a ports.JobLock within one process; the zero value is ready.
type Local struct{ locks sync.Map }

// TryRun implements ports.JobLock.
func (l *Local) TryRun(ctx context.Context, name string, fn func(context.Context) error) (bool, error) {
	v, _ := l.locks.LoadOrStore(name, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	if !mu.TryLock() {
		return false, nil
	}
	defer mu.Unlock()
	return true, fn(ctx)
}
