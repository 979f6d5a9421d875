package command

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/betterkey/backend/domain"
)

// sweepBatch bounds how many abandoned commands one sweep ends.
const sweepBatch = 100

// Worker sends the commands this process admitted, claims the ones other processes admitted but
// did not send (their process stopped), and ends the ones whose worker is gone. Every replica runs
// one; the store makes sure each command is sent by at most one of them.
type Worker struct {
	s      *Service
	slots  chan struct{}
	sends  sync.WaitGroup
	base   context.Context // parent of every send; cancelled when a drain runs out of time
	cancel context.CancelFunc
}

// NewWorker returns a worker for s; Run starts it.
func (s *Service) NewWorker() *Worker {
	base, cancel := context.WithCancel(context.Background())
	return &Worker{s: s, slots: make(chan struct{}, s.cfg.Concurrency), base: base, cancel: cancel}
}

// Run takes work until ctx ends and then returns; the sends it started go on until they finish
// or Drain cuts them short.
func (w *Worker) Run(ctx context.Context) {
	tick := time.NewTicker(w.s.cfg.ClaimInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-w.s.queue:
			if !w.acquire(ctx) {
				return
			}
			w.start(func(ctx context.Context) { w.dispatch(ctx, id) })
		case <-tick.C:
			w.sweep(ctx)
			w.claim(ctx)
		}
	}
}

// Drain first starts the commands still queued here, then waits for the sends in progress until
// shortly before ctx's deadline (a quarter of the time left, at most a second, is kept to record
// what is cut short) or until ctx ends. Sends
// still running then are cancelled: one already sent ends unknown, one not yet sent fails, and
// both are recorded before Drain returns. It reports whether it had to cut any short.
func (w *Worker) Drain(ctx context.Context) error {
	w.flush(ctx)
	done := make(chan struct{})
	go func() {
		w.sends.Wait()
		close(done)
	}()
	wait := ctx
	if deadline, ok := ctx.Deadline(); ok {
		keep := min(time.Until(deadline)/4, time.Second)
		var cancel context.CancelFunc
		wait, cancel = context.WithDeadline(ctx, deadline.Add(-keep))
		defer cancel()
	}
	select {
	case <-done:
		w.cancel()
		return nil
	case <-wait.Done():
	}
	w.cancel()
	<-done // each send records its outcome within FinishTimeout
	return fmt.Errorf("drain command worker: sends cut short: %w", wait.Err())
}

// flush sends the commands this process admitted but had not started when Run returned (the
// listeners were still closing), rather than leaving them for another replica's claim.
func (w *Worker) flush(ctx context.Context) {
	for {
		select {
		case id := <-w.s.queue:
			if !w.acquire(ctx) {
				return
			}
			w.start(func(ctx context.Context) { w.dispatch(ctx, id) })
		default:
			return
		}
	}
}

// acquire takes a send slot, waiting while all are busy; false when ctx ended first.
func (w *Worker) acquire(ctx context.Context) bool {
	select {
	case w.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// start runs one send on its own goroutine in an acquired slot.
func (w *Worker) start(f func(ctx context.Context)) {
	w.sends.Go(func() {
		defer func() { <-w.slots }()
		f(w.base)
	})
}

// dispatch takes a command this process admitted and sends it, unless another process claimed or
// ended it first; one whose TTL passed in the queue expires unsent.
func (w *Worker) dispatch(ctx context.Context, id domain.CommandID) {
	s := w.s
	now := s.now()
	c, err := s.d.Commands.Dispatch(ctx, id, now, now.Add(s.cfg.Lease))
	switch {
	case err == nil:
		w.execute(ctx, c)
	case errors.Is(err, domain.ErrCommandExpired):
		s.finish(ctx, id, func(c *domain.Command) error { return c.Expire(s.now()) }, nil)
	case errors.Is(err, domain.ErrCommandStateConflict):
		// Claimed by another replica, or swept: someone else owns it now.
	default:
		s.d.Report("dispatch command", err)
	}
}

// claim dispatches, up to the free slots, accepted commands older than ClaimGrace that no process
// has sent: their admitting process stopped or was too busy.
func (w *Worker) claim(ctx context.Context) {
	s := w.s
	free := cap(w.slots) - len(w.slots)
	if free <= 0 {
		return
	}
	now := s.now()
	cmds, err := s.d.Commands.ClaimAccepted(ctx, now.Add(-s.cfg.ClaimGrace), now, now.Add(s.cfg.Lease), free)
	if err != nil {
		s.d.Report("claim accepted commands", err)
		return
	}
	for _, c := range cmds {
		if !w.acquire(ctx) {
			// Stopping: the claimed command is dispatched without a sender; its lease runs out
			// and the sweep ends it unknown, which is the truth as far as anyone can tell.
			return
		}
		w.start(func(ctx context.Context) { w.execute(ctx, c) })
	}
}

// sweep ends commands whose worker is gone.
func (w *Worker) sweep(ctx context.Context) {
	s := w.s
	ended, err := s.d.Commands.Sweep(ctx, s.now(), sweepBatch)
	if err != nil {
		s.d.Report("sweep abandoned commands", err)
		return
	}
	for _, c := range ended {
		s.d.Observer.Finished(c)
		s.waiters.wake(c.ID)
	}
}

// execute sends a dispatched command while keeping its lease alive, then records the outcome.
func (w *Worker) execute(ctx context.Context, c domain.Command) {
	s := w.s
	s.d.Observer.Executing(1)
	defer s.d.Observer.Executing(-1)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.MaxExecution)
	defer cancel()
	stopRenewing := w.keepLease(ctx, cancel, c.ID)
	o := s.send(ctx, c)
	stopRenewing()
	s.finish(ctx, c.ID, func(x *domain.Command) error { return s.conclude(x, o, s.now()) }, &o)
}

// keepLease renews the command's lease every Lease/4 until stopped. When the lease is lost (a
// sweep or a new command took it over) or cannot be renewed before it runs out, it cancels the
// send: another command may be admitted for the vehicle now, and two must never be in flight.
func (w *Worker) keepLease(ctx context.Context, cancel context.CancelFunc, id domain.CommandID) (stop func()) {
	s := w.s
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		every := max(s.cfg.Lease/4, time.Millisecond)
		t := time.NewTicker(every)
		defer t.Stop()
		heldUntil := s.now().Add(s.cfg.Lease)
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			now := s.now()
			ok, err := s.d.Commands.Renew(ctx, id, now, now.Add(s.cfg.Lease))
			switch {
			case err == nil && ok:
				heldUntil = now.Add(s.cfg.Lease)
			case err == nil:
				cancel()
				return
			default:
				s.d.Report("renew command lease", err)
				if !now.Add(every).Before(heldUntil) {
					cancel()
					return
				}
			}
		}
	})
	return func() {
		close(quit)
		wg.Wait()
	}
}
