package webhook

import (
	"context"
	"errors"
	"fmt"

	"github.com/betterkey/backend/domain"
)

// ErrEmptyDelivery refuses a delivery without a body before anything else is looked at.
var ErrEmptyDelivery = &domain.Error{Kind: domain.KindInvalid, Code: "EMPTY_DELIVERY", Msg: "webhook delivery has no body"}

// errUnchanged ends a connection update that has nothing to write.
var errUnchanged = errors.New("connection already marked")

// IngestSmartcar takes one raw Smartcar delivery. The signature over the exact bytes is checked
// first; a mismatch (a missing or malformed signature included) is an error wrapping
// domain.ErrWebhookSignature and nothing is parsed or stored. Only then is the body decoded: a
// verify challenge is answered with the current secret and not stored; a body that is not an
// event is stored as poison and never processed; an event is stored under its eventId unless it
// was stored before, and left to the worker, which this call wakes.
func (s *Service) IngestSmartcar(ctx context.Context, body []byte, signature string) (Receipt, error) {
	if len(body) == 0 {
		return Receipt{}, ErrEmptyDelivery
	}
	if err := s.d.VehicleEvents.Authenticate(body, signature); err != nil {
		return Receipt{}, err
	}
	now := s.now()
	ev, err := s.d.VehicleEvents.Decode(body)
	if err != nil {
		poison := domain.InboxEvent{Source: domain.SourceSmartcar, ID: domain.ContentEventID(body), Payload: body,
			Status: domain.InboxPoison, Outcome: string(OutcomeMalformed), ReceivedAt: now, AvailableAt: now, FinishedAt: now}
		if _, err := s.d.Inbox.Add(ctx, poison); err != nil {
			return Receipt{}, fmt.Errorf("store poison delivery: %w", err)
		}
		return Receipt{Outcome: OutcomePoison}, nil
	}
	if ev.Type == domain.VehicleEventVerify {
		return Receipt{Outcome: OutcomeVerify, Challenge: s.d.VehicleEvents.AnswerChallenge(ev.Challenge)}, nil
	}
	e := domain.InboxEvent{Source: domain.SourceSmartcar, ID: eventKey(ev.ID, body), Type: ev.Name, Payload: body,
		Status: domain.InboxPending, ReceivedAt: now, AvailableAt: now}
	added, err := s.d.Inbox.Add(ctx, e)
	if err != nil {
		return Receipt{}, fmt.Errorf("store webhook event: %w", err)
	}
	if !added {
		return Receipt{Outcome: OutcomeDuplicate}, nil
	}
	s.notify()
	return Receipt{Outcome: OutcomeStored}, nil
}

// processSmartcar applies one stored Smartcar event, decoded once by the worker (decodeSmartcar)
// from the stored body, which was authenticated before it was stored: the inbox keeps the raw
// truth, so a fixed decoder can replay it. A body that did not decode is malformed.
func (s *Service) processSmartcar(ctx context.Context, ev domain.VehicleEvent, decodeErr error) (Outcome, error) {
	if decodeErr != nil {
		return OutcomeMalformed, nil
	}
	switch ev.Type {
	case domain.VehicleEventState:
		return s.applyLock(ctx, ev)
	case domain.VehicleEventError:
		return s.applyProblems(ctx, ev)
	}
	return OutcomeIgnored, nil
}

// applyLock records a reported lock state on every stored vehicle with the event's Smartcar id:
// the lock state is a fact about the car, whoever linked it. The store keeps the newest
// observation, so a late or replayed event never rolls the status back. The observation also
// settles the vehicle's commands whose outcome was unknown, even when a newer status is stored
// already: it may still be the first proof that a command sent before it worked.
func (s *Service) applyLock(ctx context.Context, ev domain.VehicleEvent) (Outcome, error) {
	if ev.Lock == nil {
		return OutcomeIgnored, nil
	}
	now := s.now()
	if ev.Lock.ObservedAt.After(now.Add(s.cfg.MaxClockSkew)) {
		return OutcomeFuture, nil
	}
	vehicles, err := s.d.Connections.VehiclesBySmartcarID(ctx, ev.VehicleID, "")
	if err != nil {
		return "", fmt.Errorf("find vehicles of event: %w", err)
	}
	if len(vehicles) == 0 {
		return OutcomeUnknownVehicle, nil
	}
	fetched := ev.Lock.FetchedAt
	if fetched.IsZero() {
		fetched = now
	}
	recorded := false
	for _, v := range vehicles {
		locked := ev.Lock.Locked
		ok, err := s.d.Connections.SaveStatus(ctx, domain.VehicleStatus{VehicleID: v.ID, Locked: &locked,
			ObservedAt: ev.Lock.ObservedAt, FetchedAt: fetched, Source: domain.StatusWebhook})
		switch {
		case errors.Is(err, domain.ErrNotFound): // disconnected meanwhile
			continue
		case err != nil:
			return "", fmt.Errorf("store webhook status: %w", err)
		}
		recorded = recorded || ok
		if s.d.Commands != nil {
			if _, err := s.d.Commands.SettleUnknown(ctx, v.ID, locked, ev.Lock.ObservedAt, now); err != nil {
				return "", fmt.Errorf("settle unknown commands: %w", err)
			}
		}
	}
	if !recorded {
		return OutcomeStale, nil
	}
	return OutcomeApplied, nil
}

// applyProblems marks the connections behind the event's vehicle when an unresolved error says
// their credentials are dead: needs_reauth, or revoked, which is never softened. Only the
// connections of the event's Smartcar user are touched, when the event names one. A RESOLVED
// event changes nothing: a dead grant only comes back through Connect.
func (s *Service) applyProblems(ctx context.Context, ev domain.VehicleEvent) (Outcome, error) {
	var target domain.ConnectionStatus
	for _, p := range ev.Problems {
		if p.Resolved || p.Connection == "" {
			continue
		}
		target = domain.MoreSevere(target, p.Connection)
	}
	if target == "" {
		return OutcomeIgnored, nil
	}
	vehicles, err := s.d.Connections.VehiclesBySmartcarID(ctx, ev.VehicleID, ev.UserID)
	if err != nil {
		return "", fmt.Errorf("find vehicles of event: %w", err)
	}
	if len(vehicles) == 0 {
		return OutcomeUnknownVehicle, nil
	}
	marked := false
	done := map[domain.ConnectionID]bool{}
	for _, v := range vehicles {
		if done[v.ConnectionID] {
			continue
		}
		done[v.ConnectionID] = true
		_, err := s.d.Connections.Update(ctx, v.ConnectionID, func(c *domain.Connection) error {
			if !c.Mark(target, s.now()) {
				return errUnchanged
			}
			return nil
		})
		switch {
		case errors.Is(err, errUnchanged), errors.Is(err, domain.ErrNotFound):
		case err != nil:
			return "", fmt.Errorf("mark connection %s: %w", target, err)
		default:
			marked = true
		}
	}
	if !marked {
		return OutcomeIgnored, nil
	}
	return OutcomeMarked, nil
}
