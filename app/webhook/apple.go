package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/betterkey/backend/domain"
)

// appleRecord is the frozen layout an Apple event is kept in: what processing needs and nothing
// more (no email address, no token).
type appleRecord struct {
	Type    domain.AppleEventType `json:"type"`
	Subject string                `json:"sub"`
	Issuer  string                `json:"iss"`
	Time    time.Time             `json:"event_time,omitzero"`
}

// ReceiveApple takes one Apple server-to-server notification. A payload that fails any check is
// an error wrapping domain.ErrInvalidNotification and nothing is stored. A verified one is
// stored under its jti (a duplicate ends there) and processed at once, inside the request, so
// that revoked consent takes effect before Apple has its answer; the stored event is leased to
// this request meanwhile, and if processing fails or the process dies, the worker retries it.
func (s *Service) ReceiveApple(ctx context.Context, payload string) (Receipt, error) {
	n, err := s.d.Notifications.VerifyNotification(ctx, payload)
	if err != nil {
		return Receipt{}, fmt.Errorf("verify apple notification: %w", err)
	}
	body, err := json.Marshal(appleRecord{Type: n.Event.Type, Subject: n.Event.Subject, Issuer: n.Issuer, Time: n.Event.Time})
	if err != nil {
		return Receipt{}, fmt.Errorf("encode apple event: %w", err)
	}
	now := s.now()
	e := domain.InboxEvent{Source: domain.SourceApple, ID: eventKey(n.ID, []byte(n.ID)), Type: string(n.Event.Type), Payload: body,
		Status: domain.InboxPending, Attempts: 1, ReceivedAt: now, AvailableAt: now.Add(s.cfg.Lease)}
	added, err := s.d.Inbox.Add(ctx, e)
	if err != nil {
		return Receipt{}, fmt.Errorf("store apple notification: %w", err)
	}
	if !added {
		return Receipt{Outcome: OutcomeDuplicate}, nil
	}
	// Apple may hang up; the event is ours until the lease ends, so finish it regardless.
	inline, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.InlineTimeout)
	defer cancel()
	outcome, perr := s.processApple(inline, e)
	if _, err := s.settle(inline, e, outcome, perr); err != nil {
		return Receipt{}, err
	}
	return Receipt{Outcome: OutcomeStored}, nil
}

// processApple applies one stored Apple event to the account of its subject.
func (s *Service) processApple(ctx context.Context, e domain.InboxEvent) (Outcome, error) {
	var r appleRecord
	if err := json.Unmarshal(e.Payload, &r); err != nil || r.Subject == "" {
		return OutcomeMalformed, nil
	}
	if r.Type != domain.AppleConsentRevoked && r.Type != domain.AppleAccountDeleted {
		return OutcomeIgnored, nil
	}
	u, err := s.d.Users.GetByApple(ctx, r.Issuer, r.Subject)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return OutcomeUnknownSubject, nil
	case err != nil:
		return "", fmt.Errorf("find account of apple subject: %w", err)
	}
	if r.Type == domain.AppleConsentRevoked {
		if _, err := s.d.Sessions.RevokeAllForUser(ctx, u.ID, s.now(), domain.RevokeAppleConsent); err != nil {
			return "", fmt.Errorf("revoke sessions: %w", err)
		}
		if err := s.d.Accounts.ForgetAppleGrants(ctx, u.ID, r.Time); err != nil {
			return "", fmt.Errorf("forget apple grants: %w", err)
		}
		return OutcomeSessionsRevoked, nil
	}
	// Erasure must not wait on an upstream forever: after enough attempts it goes ahead without it.
	if err := s.d.Accounts.Delete(ctx, u.ID, s.cfg.erasureForce(e.Attempts)); err != nil {
		return "", fmt.Errorf("delete account: %w", err)
	}
	return OutcomeAccountDeleted, nil
}
