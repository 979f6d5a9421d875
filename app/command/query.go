package command

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/betterkey/backend/domain"
)

// History paging bounds.
const (
	DefaultHistoryLimit = 20
	MaxHistoryLimit     = 100
)

// Get returns one of the user's commands; another user's command is domain.ErrNotFound. With a
// positive wait (capped at the configured MaxWait) it long-polls: it returns as soon as the
// command is final, or when the wait is over, or when ctx ends, with the command as it then is.
// A command this process runs wakes it at once; one another replica runs is seen by re-reading
// the store every PollInterval.
func (s *Service) Get(ctx context.Context, user domain.UserID, id domain.CommandID, wait time.Duration) (domain.Command, error) {
	if !domain.ValidID(string(id)) {
		return domain.Command{}, domain.ErrNotFound
	}
	wait = min(max(wait, 0), s.cfg.MaxWait)
	woken, stop := s.waiters.watch(id)
	defer stop()
	var giveUp <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		giveUp = t.C
	}
	for {
		c, err := s.d.Commands.Get(ctx, id)
		if err != nil {
			return domain.Command{}, fmt.Errorf("get command: %w", err)
		}
		if c.UserID != user {
			return domain.Command{}, domain.ErrNotFound
		}
		if c.Status.Final() || giveUp == nil {
			return c, nil
		}
		poll := time.NewTimer(s.cfg.PollInterval)
		select {
		case <-woken:
		case <-poll.C:
		case <-giveUp:
			giveUp = nil // one last read, so the answer is as fresh as the wait allows
		case <-s.waiters.released:
			giveUp = nil // draining: answer now, with a fresh read
		case <-ctx.Done():
			poll.Stop()
			return c, nil
		}
		poll.Stop()
	}
}

// History lists the user's commands for one of their vehicles, newest first, at most limit
// (default 20, at most 100), older than the command before when it is given. Another user's
// vehicle is domain.ErrNotFound, so history never confirms that a vehicle id exists.
func (s *Service) History(ctx context.Context, user domain.UserID, vehicle domain.VehicleID, before domain.CommandID, limit int) ([]domain.Command, error) {
	switch {
	case limit < 0 || limit > MaxHistoryLimit:
		return nil, domain.Invalid("limit", "must be between 1 and 100")
	case limit == 0:
		limit = DefaultHistoryLimit
	}
	if before != "" && !domain.ValidID(string(before)) {
		return nil, domain.Invalid("before", "must be a command id")
	}
	if !domain.ValidID(string(vehicle)) {
		return nil, domain.ErrNotFound
	}
	if _, err := s.d.Connections.Vehicle(ctx, user, vehicle); err != nil {
		return nil, fmt.Errorf("get vehicle: %w", err)
	}
	list, err := s.d.Commands.History(ctx, user, vehicle, before, limit)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, domain.Invalid("before", "must be a command of this vehicle")
	}
	if err != nil {
		return nil, fmt.Errorf("list commands: %w", err)
	}
	return list, nil
}

// ReleaseWaits ends every long-poll of this process at once, with its command as it is, and
// makes later ones answer without waiting: a replica that drains must not hold a client for up
// to 20 s while the load balancer could send its next poll elsewhere. It reports how many
// long-polls it released.
func (s *Service) ReleaseWaits() int { return s.waiters.release() }

// Waiting reports how many requests of this process wait on a command right now.
func (s *Service) Waiting() int { return s.waiters.count() }

// waiters wakes this process's long-polls when its worker ends a command, so they need not wait
// for their next poll.
type waiters struct {
	mu       sync.Mutex
	m        map[domain.CommandID]map[chan struct{}]struct{}
	released chan struct{} // closed by release
	once     sync.Once
}

func newWaiters() *waiters {
	return &waiters{m: map[domain.CommandID]map[chan struct{}]struct{}{}, released: make(chan struct{})}
}

// release closes released once and reports how many watchers there were.
func (w *waiters) release() int {
	n := w.count()
	w.once.Do(func() { close(w.released) })
	return n
}

func (w *waiters) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, set := range w.m {
		n += len(set)
	}
	return n
}

// watch returns a channel that receives when id ends here, and the function that stops watching.
func (w *waiters) watch(id domain.CommandID) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.m[id] == nil {
		w.m[id] = map[chan struct{}]struct{}{}
	}
	w.m[id][ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.m[id], ch)
		if len(w.m[id]) == 0 {
			delete(w.m, id)
		}
	}
}

// wake tells every watcher of id, without blocking.
func (w *waiters) wake(id domain.CommandID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.m[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
