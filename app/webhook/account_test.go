package webhook_test

import (
	"errors"
	"testing"

	"github.com/betterkey/backend/app/webhook"
	"github.com/betterkey/backend/domain"
)

var errSmartcarDown = &domain.UpstreamError{Err: domain.ErrUpstreamUnavailable, Op: "disconnect", Transient: true}

// requestDeletion runs DELETE /v1/me's use case and checks that the caller's access ended.
func (h *harness) requestDeletion(t *testing.T, l linked) bool {
	t.Helper()
	done, err := h.svc.DeleteAccount(t.Context(), l.user.ID)
	if err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	if s, _ := h.sessions.Get(t.Context(), l.session.ID); s.RevokedAt == nil {
		t.Fatal("the session survives a deletion request")
	}
	return done
}

func (h *harness) accountGone(t *testing.T, l linked) bool {
	t.Helper()
	_, err := h.users.Get(t.Context(), l.user.ID)
	if err != nil && !errors.Is(err, domain.ErrNotFound) {
		t.Fatal(err)
	}
	return err != nil
}

func TestDeleteAccountDoneInTheRequest(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	l := h.link(t, "sub-1", "sc-user-1", "sc-car-1", "sc-car-2")
	if !h.requestDeletion(t, l) {
		t.Fatal("DeleteAccount = not done, want done")
	}
	if !h.accountGone(t, l) {
		t.Fatal("the account survives its deletion")
	}
	e, err := h.inbox.Get(t.Context(), domain.SourceAccount, string(l.user.ID))
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != domain.InboxProcessed || e.Outcome != string(webhook.OutcomeAccountDeleted) {
		t.Fatalf("request after the deletion: %+v", e)
	}
	if n := h.pending(t); n != 0 {
		t.Fatalf("%d events left for the worker", n)
	}
}

func TestDeleteAccountFinishedByTheWorker(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	l := h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	h.unlink.err = errSmartcarDown
	if h.requestDeletion(t, l) {
		t.Fatal("DeleteAccount = done while Smartcar is down")
	}
	if h.accountGone(t, l) {
		t.Fatal("the account went before Smartcar was told")
	}
	e, _ := h.inbox.Get(t.Context(), domain.SourceAccount, string(l.user.ID))
	if e.Status != domain.InboxPending || e.LastError != "UNAVAILABLE" {
		t.Fatalf("after the inline attempt: %+v", e)
	}

	// A repeated request is the same job, and while Smartcar is down it stays pending.
	if h.requestDeletion(t, l) {
		t.Fatal("repeated DeleteAccount = done while Smartcar is down")
	}
	if again, _ := h.inbox.Get(t.Context(), domain.SourceAccount, string(l.user.ID)); again.Attempts != 1 || !again.AvailableAt.Equal(e.AvailableAt) {
		t.Fatalf("a repeated request changed the job: %+v, was %+v", again, e)
	}

	h.unlink.mu.Lock()
	h.unlink.err = nil
	h.unlink.mu.Unlock()
	if out := h.process(t); len(out) != 0 {
		t.Fatalf("the worker took the job before its backoff ended: %v", out)
	}
	h.clock.Advance(e.AvailableAt.Sub(start))
	if out := h.process(t); len(out) != 1 || out[0] != webhook.OutcomeAccountDeleted {
		t.Fatalf("worker: %v", out)
	}
	if !h.accountGone(t, l) {
		t.Fatal("the worker left the account")
	}
	if _, err := h.conns.Get(t.Context(), l.conn.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("connection after the deletion: %v", err)
	}
	if h.unlink.calls != 3 {
		t.Fatalf("Smartcar was asked %d times, want 3 (inline, repeat, worker)", h.unlink.calls)
	}
}

func TestDeleteAccountForgoesSmartcarAfterAttempts(t *testing.T) {
	h := newHarness(t, webhook.Config{ForceLocalDeleteAfter: 3})
	l := h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	h.unlink.err = errSmartcarDown
	if h.requestDeletion(t, l) {
		t.Fatal("DeleteAccount = done while Smartcar is down")
	}
	for attempt, want := range []webhook.Outcome{webhook.OutcomeRetry, webhook.OutcomeAccountDeleted} {
		e, _ := h.inbox.Get(t.Context(), domain.SourceAccount, string(l.user.ID))
		h.clock.Advance(e.AvailableAt.Sub(h.clock.Now()))
		if out := h.process(t); len(out) != 1 || out[0] != want {
			t.Fatalf("attempt %d: %v, want %v", attempt+2, out, want)
		}
	}
	if !h.accountGone(t, l) {
		t.Fatal("the forced deletion left the account")
	}
	if _, err := h.conns.Get(t.Context(), l.conn.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("connection after the forced deletion: %v", err)
	}
	if e, _ := h.inbox.Get(t.Context(), domain.SourceAccount, string(l.user.ID)); e.Status != domain.InboxProcessed {
		t.Fatalf("job after the forced deletion: %+v", e)
	}
}
