package command

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/betterkey/backend/domain"
)

// errTooLate stops a send that would start after the command's deadline.
var errTooLate = errors.New("command deadline passed before sending")

// outcome is what sending a command came to.
type outcome struct {
	// err is the overall failure: the last send's, or what kept it from happening (the vehicle
	// gone, the link dead, the deadline passed).
	err error
	// sent is the error of the last upstream Security call when one was made, which alone says
	// whether the command may have reached the vehicle; attempted tells whether one was made.
	sent      error
	attempted bool
	requestID string
	// vehicle is the vehicle as read before sending, for the status update after success.
	vehicle *domain.VehicleView
}

// send delivers the command through the vehicle link: a token refresh when needed, one retry
// after a rejected token (WithAccess), and up to MaxAttempts sends in all when a send provably
// did not reach the upstream. Nothing is sent at or after the deadline, and nothing is sent again
// once a send may have reached the vehicle.
func (s *Service) send(ctx context.Context, c domain.Command) outcome {
	var o outcome
	v, err := s.d.Connections.Vehicle(ctx, c.UserID, c.VehicleID)
	if err != nil {
		o.err = fmt.Errorf("get vehicle: %w", err)
		return o
	}
	o.vehicle = &v
	backoff := s.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		o.err = s.d.Access.WithAccess(ctx, c.ConnectionID, func(g domain.VehicleGrant) error {
			o.sent, o.attempted = nil, false
			if !s.now().Before(c.Deadline) {
				return errTooLate
			}
			o.attempted = true
			id, err := s.d.API.Security(ctx, g, v.SmartcarID, c.Action.Security())
			o.requestID, o.sent = id, err
			return err
		})
		if o.err == nil || attempt >= s.cfg.MaxAttempts || !retryable(o) || !s.now().Add(backoff).Before(c.Deadline) {
			return o
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return o
		case <-t.C:
		}
		backoff *= 2
	}
}

// retryable is true only for a send that failed on the way to the upstream and provably never
// reached it (a refused connection, a 503 from its edge): the one case a second send cannot
// make a second unlock. Refusals by the vehicle or the upstream are answers, not retried.
func retryable(o outcome) bool {
	if !o.attempted {
		return false
	}
	up := domain.AsUpstream(o.sent)
	return up != nil && up.ShouldRetry() &&
		(errors.Is(o.sent, domain.ErrUpstreamUnavailable) || errors.Is(o.sent, domain.ErrUpstreamTimeout))
}

// conclude applies the outcome to the command: success is succeeded (Smartcar sent it); a send
// that may have reached the vehicle is unknown; a deadline that passed before sending is expired;
// every definite refusal is failed with its stable code and, when rate limited, the upstream's
// Retry-After.
func (s *Service) conclude(c *domain.Command, o outcome, now time.Time) error {
	switch {
	case o.err == nil:
		return c.Succeed(now, o.requestID)
	case errors.Is(o.err, errTooLate):
		return c.Expire(now)
	}
	requestID := o.requestID
	up := domain.AsUpstream(o.sent)
	if up != nil && up.RequestID != "" {
		requestID = up.RequestID
	}
	if o.attempted && o.sent != nil && mayHaveExecuted(o.sent) {
		return c.MarkUnknown(now, codeOf(o.sent), requestID)
	}
	var retryAfter time.Duration
	if up := domain.AsUpstream(o.err); up != nil && errors.Is(o.err, domain.ErrRateLimited) {
		retryAfter = up.RetryAfter
	}
	return c.Fail(now, codeOf(o.err), requestID, retryAfter)
}

// mayHaveExecuted reads a Security error: classified ones say so themselves; an error nobody
// classified, after the request went out, has to be assumed to have reached the vehicle.
func mayHaveExecuted(err error) bool {
	if up := domain.AsUpstream(err); up != nil {
		return up.MayHaveExecuted()
	}
	return domain.KindOf(err) != domain.KindInvalid
}

// finish records how a command ended, under its row lock, even while the process stops (with its
// own FinishTimeout). After a success it stores the lock state the command implies (source
// "command"), keeping the openings last observed; only then does it wake this process's waiters,
// so an app that long-polled the command and then reads the status sees the command's effect. A
// command someone else ended first (a sweep after a lost lease) keeps their verdict.
func (s *Service) finish(ctx context.Context, id domain.CommandID, apply func(*domain.Command) error, o *outcome) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.FinishTimeout)
	defer cancel()
	c, err := s.d.Commands.Update(ctx, id, apply)
	if errors.Is(err, domain.ErrCommandStateConflict) {
		return // ended elsewhere first; that verdict stands
	}
	if err != nil {
		s.d.Report("record command outcome", err)
		return
	}
	if c.Status == domain.CommandSucceeded && o != nil && o.vehicle != nil {
		s.saveCommandStatus(ctx, c, o.vehicle.Status)
	}
	s.d.Observer.Finished(c)
	s.waiters.wake(id)
}

// saveCommandStatus stores the lock state a succeeded command implies, keeping the openings of
// prev, the status last observed.
func (s *Service) saveCommandStatus(ctx context.Context, c domain.Command, prev *domain.VehicleStatus) {
	locked := c.Action == domain.CommandLock
	at := *c.FinishedAt
	st := domain.VehicleStatus{VehicleID: c.VehicleID, Locked: &locked, ObservedAt: at, FetchedAt: at, Source: domain.StatusCommand}
	if prev != nil {
		st.Doors, st.Windows = prev.Doors, prev.Windows
	}
	if _, err := s.d.Connections.SaveStatus(ctx, st); err != nil && !errors.Is(err, domain.ErrNotFound) {
		s.d.Report("store vehicle status after command", err)
	}
}
