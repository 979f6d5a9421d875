package webhook

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/betterkey/backend/domain"
)

// accountDeleteType is the inbox event type of an owner's deletion request.
const accountDeleteType = "account-delete"

// accountRecord is the frozen layout an account deletion request is kept in.
type accountRecord struct {
	User domain.UserID `json:"user"`
}

// DeleteAccount is the owner's request to erase their account (DELETE /v1/me). The request is
// stored in the inbox under the user id, so repeated requests are one job, and the caller's
// sessions are revoked at once; then the deletion is tried inside the request. done reports
// whether the account is gone. When it is not (Smartcar could not be told about a vehicle, say),
// the job stays pending and the worker finishes it with the usual retries and backoff, going
// ahead without Smartcar after ForceLocalDeleteAfter attempts, exactly as for Apple's
// account-delete. Only a failure to store the request or to revoke the sessions is an error.
func (s *Service) DeleteAccount(ctx context.Context, user domain.UserID) (done bool, err error) {
	body, err := json.Marshal(accountRecord{User: user})
	if err != nil {
		return false, fmt.Errorf("encode account deletion: %w", err)
	}
	now := s.now()
	e := domain.InboxEvent{Source: domain.SourceAccount, ID: string(user), Type: accountDeleteType, Payload: body,
		Status: domain.InboxPending, Attempts: 1, ReceivedAt: now, AvailableAt: now.Add(s.cfg.Lease)}
	added, err := s.d.Inbox.Add(ctx, e)
	if err != nil {
		return false, fmt.Errorf("store account deletion: %w", err)
	}
	// Stored first, so that a failure from here on leaves a job the worker finishes anyway.
	if _, err := s.d.Sessions.RevokeAllForUser(ctx, user, now, domain.RevokeAccount); err != nil {
		return false, fmt.Errorf("revoke sessions: %w", err)
	}
	// The app may hang up; the attempt goes on regardless, bounded.
	inline, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.InlineTimeout)
	defer cancel()
	if !added {
		return s.retryAccountDeletion(inline, e)
	}
	// The new event is leased to this request until the lease ends, as an Apple notification is.
	outcome, perr := s.processAccount(inline, e)
	if _, err := s.settle(inline, e, outcome, perr); err != nil {
		return false, err
	}
	return perr == nil, nil
}

// retryAccountDeletion is a repeated request for a job stored before, which a worker may hold
// right now: it tries the deletion once more (concurrent deletions converge) and, when that
// succeeds, finishes the job; when it fails, the job's own retries stand unchanged.
func (s *Service) retryAccountDeletion(ctx context.Context, e domain.InboxEvent) (bool, error) {
	derr := s.d.Accounts.Delete(ctx, domain.UserID(e.ID), domain.ErasureForce{})
	if derr == nil {
		err := s.d.Inbox.Finish(ctx, e.Source, e.ID, domain.InboxProcessed, string(OutcomeAccountDeleted), OutcomeAccountDeleted.spent(), s.now())
		if err != nil {
			return false, fmt.Errorf("finish account deletion: %w", err)
		}
		return true, nil
	}
	stored, err := s.d.Inbox.Get(ctx, e.Source, e.ID)
	if err != nil {
		return false, fmt.Errorf("get account deletion: %w", err)
	}
	switch stored.Status {
	case domain.InboxPending:
		return false, nil
	case domain.InboxProcessed:
		return true, nil // a worker finished it meanwhile
	}
	return false, fmt.Errorf("delete account: %w", derr) // given up: no worker will finish it
}

// processAccount erases the account a stored deletion request names. An account that is gone
// already is not an error, so a request the inline attempt finished costs the worker nothing.
func (s *Service) processAccount(ctx context.Context, e domain.InboxEvent) (Outcome, error) {
	var r accountRecord
	if err := json.Unmarshal(e.Payload, &r); err != nil || r.User == "" {
		return OutcomeMalformed, nil
	}
	// Erasure must not wait on an upstream forever: after enough attempts it goes ahead without it.
	if err := s.d.Accounts.Delete(ctx, r.User, s.cfg.erasureForce(e.Attempts)); err != nil {
		return "", fmt.Errorf("delete account: %w", err)
	}
	return OutcomeAccountDeleted, nil
}
