package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// WebhookInbox is an in-memory ports.WebhookInbox. One mutex serialises every call, which is
// what the database's row locks and SKIP LOCKED amount to in a single process.
type WebhookInbox struct {
	mu     sync.Mutex
	events map[inboxKey]domain.InboxEvent
}

type inboxKey struct {
	source domain.EventSource
	id     string
}

var _ ports.WebhookInbox = (*WebhookInbox)(nil)

// NewWebhookInbox returns an empty inbox.
func NewWebhookInbox() *WebhookInbox {
	return &WebhookInbox{events: map[inboxKey]domain.InboxEvent{}}
}

// Add implements ports.WebhookInbox.
func (s *WebhookInbox) Add(_ context.Context, e domain.InboxEvent) (bool, error) {
	if err := e.Validate(); err != nil {
		return false, fmt.Errorf("add inbox event: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := inboxKey{e.Source, e.ID}
	if _, ok := s.events[k]; ok {
		return false, nil
	}
	s.events[k] = normInboxEvent(e)
	return true, nil
}

// Claim implements ports.WebhookInbox; ties on AvailableAt fall back to the reception time and
// the key, as in the database.
func (s *WebhookInbox) Claim(_ context.Context, now time.Time, lease time.Duration, limit int) ([]domain.InboxEvent, error) {
	if limit <= 0 {
		return nil, nil
	}
	now = dbTime(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []domain.InboxEvent
	for _, e := range s.events {
		if e.Status == domain.InboxPending && !e.AvailableAt.After(now) {
			due = append(due, e)
		}
	}
	slices.SortFunc(due, compareDue)
	if len(due) > limit {
		due = due[:limit]
	}
	out := make([]domain.InboxEvent, 0, len(due))
	for _, e := range due {
		e.AvailableAt = dbTime(now.Add(lease))
		e.Attempts++
		s.events[inboxKey{e.Source, e.ID}] = e
		out = append(out, cloneInboxEvent(e))
	}
	slices.SortFunc(out, compareReceived)
	return out, nil
}

// compareDue orders claimable events as the database picks them: earliest available first,
// then oldest, then by key.
func compareDue(a, b domain.InboxEvent) int {
	return cmp.Or(a.AvailableAt.Compare(b.AvailableAt), compareReceived(a, b))
}

// compareReceived orders events oldest received first, then by key.
func compareReceived(a, b domain.InboxEvent) int {
	return cmp.Or(a.ReceivedAt.Compare(b.ReceivedAt), cmp.Compare(a.Source, b.Source), cmp.Compare(a.ID, b.ID))
}

// Finish implements ports.WebhookInbox.
func (s *WebhookInbox) Finish(_ context.Context, source domain.EventSource, id string, status domain.InboxStatus, outcome string, spent bool, now time.Time) error {
	if status != domain.InboxProcessed && status != domain.InboxFailed {
		return fmt.Errorf("finish inbox event: %w", domain.Invalid("status", "must be processed or failed"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := inboxKey{source, id}
	e, ok := s.events[k]
	if !ok {
		return fmt.Errorf("finish inbox event: %w", domain.ErrNotFound)
	}
	if e.Status != domain.InboxPending {
		return nil
	}
	e.Status, e.Outcome, e.FinishedAt = status, outcome, dbTime(now)
	if status == domain.InboxProcessed && spent {
		e.Payload = []byte{}
	}
	s.events[k] = e
	return nil
}

// Release implements ports.WebhookInbox.
func (s *WebhookInbox) Release(_ context.Context, source domain.EventSource, id string, at time.Time, lastError string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := inboxKey{source, id}
	e, ok := s.events[k]
	if !ok {
		return fmt.Errorf("release inbox event: %w", domain.ErrNotFound)
	}
	if e.Status != domain.InboxPending {
		return nil
	}
	e.AvailableAt, e.LastError = dbTime(at), lastError
	s.events[k] = e
	return nil
}

// Get implements ports.WebhookInbox.
func (s *WebhookInbox) Get(_ context.Context, source domain.EventSource, id string) (domain.InboxEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.events[inboxKey{source, id}]
	if !ok {
		return domain.InboxEvent{}, fmt.Errorf("get inbox event: %w", domain.ErrNotFound)
	}
	return cloneInboxEvent(e), nil
}

// DeleteFinished implements ports.WebhookInbox.
func (s *WebhookInbox) DeleteFinished(_ context.Context, source domain.EventSource, before time.Time, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, e := range s.events {
		if n >= limit {
			break
		}
		if e.Source == source && e.Status != domain.InboxPending && e.ReceivedAt.Before(before) {
			delete(s.events, k)
			n++
		}
	}
	return n, nil
}

// normInboxEvent gives an event the precision and ownership the database gives it.
func normInboxEvent(e domain.InboxEvent) domain.InboxEvent {
	e = cloneInboxEvent(e)
	e.ReceivedAt, e.AvailableAt = dbTime(e.ReceivedAt), dbTime(e.AvailableAt)
	if !e.FinishedAt.IsZero() {
		e.FinishedAt = dbTime(e.FinishedAt)
	}
	return e
}

// cloneInboxEvent copies the payload so callers never share it with the store.
func cloneInboxEvent(e domain.InboxEvent) domain.InboxEvent {
	e.Payload = slices.Clone(e.Payload)
	if e.Payload == nil {
		e.Payload = []byte{}
	}
	return e
}
