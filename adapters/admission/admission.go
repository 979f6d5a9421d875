// Package admission bounds the work a replica takes on at once. Past capacity the excess is
// refused within a few milliseconds, so the client can retry elsewhere or later, instead of every
// request queueing until it times out; and a car key keeps a share of its own, so a flood of
// vehicle lists cannot hold an unlock behind it.
package admission

import (
	"context"
	"sync/atomic"
	"time"
)

// Class is how a request is admitted.
type Class int

const (
	// Standard is every app read and write, sign-in, refresh and webhook delivery: the shared pool.
	Standard Class = iota
	// CarKey is a lock or unlock: the reserved slots first, then the shared pool.
	CarKey
	// LongPoll waits on purpose and costs little while it waits, so it has a pool of its own
	// that is large and never queues; it does not take a slot from the others.
	LongPoll
)

// Limits size the pools. The zero Limits means Defaults; otherwise every field is taken as
// given (the configuration validates them), so Queue 0 means no queue.
type Limits struct {
	// Concurrency is how many Standard and CarKey requests run at once in the shared pool.
	Concurrency int
	// Reserved is how many further CarKey requests may run at once, beyond the shared pool.
	Reserved int
	// Queue is how many requests may wait for a slot; more are refused at once.
	Queue int
	// Wait is how long a queued request waits for a slot before it is refused.
	Wait time.Duration
	// LongPolls is how many long-polls may wait at once.
	LongPolls int
}

// Defaults are the limits a replica runs with unless configured otherwise. They are a starting
// point sized for two cores and a pool of 20 database connections, not yet tuned by a load run.
var Defaults = Limits{Concurrency: 64, Reserved: 16, Queue: 64, Wait: 5 * time.Millisecond, LongPolls: 2000}

// Limiter admits or refuses requests. It is safe for concurrent use.
type Limiter struct {
	shared, reserved, polls chan struct{}
	queued                  atomic.Int64
	queue                   int64
	wait                    time.Duration
}

// New returns a limiter sized by l (Defaults for the zero Limits).
func New(l Limits) *Limiter {
	if l == (Limits{}) {
		l = Defaults
	}
	return &Limiter{shared: make(chan struct{}, max(l.Concurrency, 0)), reserved: make(chan struct{}, max(l.Reserved, 0)),
		polls: make(chan struct{}, max(l.LongPolls, 0)), queue: int64(l.Queue), wait: l.Wait}
}

// Admit takes a slot for a request of class c. It returns the function that gives the slot back
// and true, or false when the request must be refused: every slot it may use is taken and the
// queue is full, its wait ran out, or ctx ended while it waited.
func (l *Limiter) Admit(ctx context.Context, c Class) (release func(), ok bool) {
	if c == LongPoll {
		select {
		case l.polls <- struct{}{}:
			return l.releasePoll, true
		default:
			return nil, false
		}
	}
	if c == CarKey {
		select {
		case l.reserved <- struct{}{}:
			return l.releaseReserved, true
		default:
		}
	}
	select {
	case l.shared <- struct{}{}:
		return l.releaseShared, true
	default:
	}
	if l.queued.Add(1) > l.queue {
		l.queued.Add(-1)
		return nil, false
	}
	defer l.queued.Add(-1)
	var reserved chan struct{} // nil for Standard: a send on a nil channel never proceeds
	if c == CarKey {
		reserved = l.reserved
	}
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.shared <- struct{}{}:
		return l.releaseShared, true
	case reserved <- struct{}{}:
		return l.releaseReserved, true
	case <-t.C:
		return nil, false
	case <-ctx.Done():
		return nil, false
	}
}

func (l *Limiter) releaseShared()   { <-l.shared }
func (l *Limiter) releaseReserved() { <-l.reserved }
func (l *Limiter) releasePoll()     { <-l.polls }

// InFlight reports the slots in use: shared, reserved and long-poll, and the requests queued.
func (l *Limiter) InFlight() (shared, reserved, polls, queued int) {
	return len(l.shared), len(l.reserved), len(l.polls), int(l.queued.Load())
}
