package webhook

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/betterkey/backend/domain"
)

// maxReason bounds the failure reason kept with an event.
const maxReason = 300

// Observer hears what the worker does, for metrics and logs; the use case itself neither logs
// nor counts.
type Observer interface {
	// Processed is called once per attempt of an event.
	Processed(r Result)
	// ClaimFailed is called when the inbox could not be read; the worker tries again later.
	ClaimFailed(err error)
}

// Run is the inbox worker: it processes every due event, then waits for an event stored by this
// replica, the poll interval, or the end of ctx, and repeats until ctx ends. Run returns when
// ctx ends; an attempt in progress then stops at its next store call and its event goes back to
// the inbox when its lease runs out.
func (s *Service) Run(ctx context.Context, o Observer) {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		s.Drain(ctx, o)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// Drain processes due events batch by batch until none is left or ctx ends.
func (s *Service) Drain(ctx context.Context, o Observer) {
	for ctx.Err() == nil {
		results, err := s.ProcessDue(ctx)
		if err != nil {
			o.ClaimFailed(err)
			return
		}
		for _, r := range results {
			o.Processed(r)
		}
		if len(results) < s.cfg.Batch {
			return
		}
	}
}

// ProcessDue claims one batch of due events and processes each: done events are finished with
// their outcome, failed ones released for a retry with exponential backoff, and given up after
// MaxAttempts. It returns one result per processed event, in the order they were claimed.
//
// The batch is split by partition: a Smartcar event's partition is its vehicle, and every other
// event (Apple notifications, account deletions, which are rare) shares one. Partitions run
// concurrently on up to Workers goroutines, each in received order, so one car's events never
// race each other for its row while different cars' events do not wait for each other. Across
// replicas two events of one car may run at once; the store's newest-observation-wins keeps that
// correct, the partitioning only keeps it uncontended.
func (s *Service) ProcessDue(ctx context.Context) ([]Result, error) {
	events, err := s.d.Inbox.Claim(ctx, s.now(), s.cfg.Lease, s.cfg.Batch)
	if err != nil {
		return nil, fmt.Errorf("claim inbox events: %w", err)
	}
	jobs := make([]job, len(events))
	var order []string
	parts := map[string][]int{}
	for i, e := range events {
		jobs[i] = s.prepare(e)
		k := jobs[i].partition
		if _, ok := parts[k]; !ok {
			order = append(order, k)
		}
		parts[k] = append(parts[k], i)
	}
	results := make([]*Result, len(events))
	work := make(chan []int)
	var wg sync.WaitGroup
	for range min(s.cfg.Workers, len(order)) {
		wg.Go(func() {
			for idx := range work {
				for _, i := range idx {
					if ctx.Err() != nil {
						break // the rest go back to the inbox when their leases end
					}
					r := s.runJob(ctx, jobs[i])
					results[i] = &r
				}
			}
		})
	}
	for _, k := range order {
		work <- parts[k]
	}
	close(work)
	wg.Wait()
	out := make([]Result, 0, len(events))
	for _, r := range results {
		if r != nil {
			out = append(out, *r)
		}
	}
	return out, nil
}

// job is one claimed event with what the worker decoded of it.
type job struct {
	event     domain.InboxEvent
	vehicle   domain.VehicleEvent // Smartcar events
	decodeErr error
	partition string
}

// otherPartition holds every event that is not about one car.
const otherPartition = "other"

// prepare decodes a Smartcar event once, for its partition and its processing.
func (s *Service) prepare(e domain.InboxEvent) job {
	j := job{event: e, partition: otherPartition}
	if e.Source == domain.SourceSmartcar {
		j.vehicle, j.decodeErr = s.d.VehicleEvents.Decode(e.Payload)
		if j.decodeErr == nil && j.vehicle.VehicleID != "" {
			j.partition = "vehicle:" + j.vehicle.VehicleID
		}
	}
	return j
}

// runJob processes one event and records how its attempt ended.
func (s *Service) runJob(ctx context.Context, j job) Result {
	var (
		outcome Outcome
		perr    error
	)
	switch j.event.Source {
	case domain.SourceSmartcar:
		outcome, perr = s.processSmartcar(ctx, j.vehicle, j.decodeErr)
	case domain.SourceApple:
		outcome, perr = s.processApple(ctx, j.event)
	case domain.SourceAccount:
		outcome, perr = s.processAccount(ctx, j.event)
	default:
		outcome = OutcomeIgnored
	}
	r, err := s.settle(ctx, j.event, outcome, perr)
	if err != nil {
		r.Outcome, r.Err = OutcomeRetry, err // the lease brings it back
	}
	return r
}

// settle records an attempt's end: the outcome when it succeeded, else a release for a later
// attempt (or, past MaxAttempts, the failed state). The error is the inbox's, when it could not
// record either.
func (s *Service) settle(ctx context.Context, e domain.InboxEvent, outcome Outcome, perr error) (Result, error) {
	r := Result{Source: e.Source, ID: e.ID, Type: e.Type, Outcome: outcome}
	now := s.now()
	if perr == nil {
		if err := s.d.Inbox.Finish(ctx, e.Source, e.ID, domain.InboxProcessed, string(outcome), outcome.spent(), now); err != nil {
			return r, fmt.Errorf("finish inbox event: %w", err)
		}
		return r, nil
	}
	r.Err = perr
	reason := failureReason(perr)
	if err := s.d.Inbox.Release(ctx, e.Source, e.ID, now.Add(s.backoff(e.Attempts)), reason); err != nil {
		return r, fmt.Errorf("release inbox event: %w", err)
	}
	r.Outcome = OutcomeRetry
	if e.Attempts >= s.cfg.MaxAttempts {
		if err := s.d.Inbox.Finish(ctx, e.Source, e.ID, domain.InboxFailed, string(OutcomeFailed), false, now); err != nil {
			return r, fmt.Errorf("give up inbox event: %w", err)
		}
		r.Outcome = OutcomeFailed
	}
	return r, nil
}

// backoff is the wait before attempt n+1: RetryBase doubled per attempt, at most RetryMax.
func (s *Service) backoff(attempts int) time.Duration {
	d := s.cfg.RetryBase
	for i := 1; i < attempts && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, s.cfg.RetryMax)
}

// failureReason is what the inbox keeps about a failed attempt: the stable code of a classified
// error, else the error's text, which in this code base never carries a secret, bounded.
func failureReason(err error) string {
	if e := domain.AsError(err); e != nil && e.Kind != domain.KindInternal {
		return e.Code
	}
	msg := err.Error()
	if len(msg) > maxReason {
		msg = strings.ToValidUTF8(msg[:maxReason], "")
	}
	return msg
}
