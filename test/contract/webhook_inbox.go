package contract

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// inboxLease is the lease the suite claims with.
const inboxLease = time.Minute

// era returns an instant in the given year. Claim and DeleteFinished see the whole table, so the
// subtests that call them keep to years of their own, long before the present-day events every
// other subtest stores; the claim subtests run one after another in decreasing years, so none
// sees what an earlier one left pending.
func era(year int) time.Time { return time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC) }

// newInboxEvent returns a pending event with a fresh id, received and available at.
func newInboxEvent(source domain.EventSource, at time.Time) domain.InboxEvent {
	return domain.InboxEvent{
		Source: source, ID: "evt-" + randomHex(12), Type: "VEHICLE_STATE", Payload: []byte(`{"eventId":"x"}`),
		Status: domain.InboxPending, ReceivedAt: at, AvailableAt: at,
	}
}

func addEvents(t *testing.T, s ports.WebhookInbox, events ...domain.InboxEvent) {
	t.Helper()
	for _, e := range events {
		if ok, err := s.Add(t.Context(), e); err != nil || !ok {
			t.Fatalf("Add = %v, %v; want true, nil", ok, err)
		}
	}
}

func wantInbox(t *testing.T, s ports.WebhookInbox, want domain.InboxEvent) {
	t.Helper()
	got, err := s.Get(t.Context(), want.Source, want.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("stored event (-got +want):\n%s", diff)
	}
}

// keys lists events as source/id, the form the claim subtests compare.
func keys(events []domain.InboxEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = string(e.Source) + "/" + e.ID
	}
	return out
}

// WebhookInbox checks a ports.WebhookInbox against its doc comments. newStore is called once per
// subtest; the stores may share one database as long as nothing else in it was received or
// becomes available before 1980.
func WebhookInbox(t *testing.T, newStore func(t *testing.T) ports.WebhookInbox) {
	inboxAdd(t, newStore)
	inboxFinish(t, newStore)
	t.Run("Claim", func(t *testing.T) {
		t.Parallel()
		inboxClaim(t, newStore)
	})
	t.Run("DeleteFinished/RemovesOnlyOldFinalEvents", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		old := []domain.InboxEvent{newInboxEvent(domain.SourceSmartcar, era(1920)), newInboxEvent(domain.SourceApple, era(1920)),
			newInboxEvent(domain.SourceSmartcar, era(1920)), newInboxEvent(domain.SourceSmartcar, era(1929))}
		old[0].Status, old[0].Outcome, old[0].FinishedAt = domain.InboxProcessed, "applied", era(1921)
		old[1].Status, old[1].FinishedAt = domain.InboxPoison, era(1920)
		old[2].AvailableAt = era(3000) // pending, but never due for the claim subtests running meanwhile
		old[3].Status, old[3].Outcome, old[3].FinishedAt = domain.InboxFailed, "failed", era(1929)
		addEvents(t, s, old...)
		n, err := s.DeleteFinished(t.Context(), domain.SourceApple, era(1925), 10)
		if err != nil || n != 1 {
			t.Fatalf("DeleteFinished(apple) = %d, %v; want 1, nil", n, err)
		}
		n, err = s.DeleteFinished(t.Context(), domain.SourceSmartcar, era(1925), 10)
		if err != nil || n != 1 {
			t.Fatalf("DeleteFinished(smartcar) = %d, %v; want 1, nil", n, err)
		}
		for i, want := range []bool{false, false, true, true} {
			_, err := s.Get(t.Context(), old[i].Source, old[i].ID)
			if kept := err == nil; kept != want {
				t.Errorf("event %d kept = %v (%v), want %v", i, kept, err, want)
			}
		}
		// In batches of at most limit, and never the pending event.
		late := newInboxEvent(domain.SourceSmartcar, era(1929))
		late.Status, late.Outcome, late.FinishedAt = domain.InboxProcessed, "applied", era(1929)
		addEvents(t, s, late)
		for i, want := range []int{1, 1, 0} {
			if n, err := s.DeleteFinished(t.Context(), domain.SourceSmartcar, era(1930), 1); err != nil || n != want {
				t.Fatalf("DeleteFinished(limit 1) #%d = %d, %v; want %d", i+1, n, err, want)
			}
		}
		if _, err := s.Get(t.Context(), old[2].Source, old[2].ID); err != nil {
			t.Errorf("the pending event went: %v", err)
		}
	})
}

func inboxAdd(t *testing.T, newStore func(t *testing.T) ports.WebhookInbox) {
	t.Run("Add/RoundTrips", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		at := time.Now().In(time.FixedZone("UTC+2", 7200)) // unrounded, as a caller may pass
		e := newInboxEvent(domain.SourceSmartcar, at)
		e.Payload = []byte{0xff, 0x00, '{', 0xfe} // poison bodies need not be text
		addEvents(t, s, e)
		want := e
		want.ReceivedAt, want.AvailableAt = at.UTC().Truncate(time.Microsecond), at.UTC().Truncate(time.Microsecond)
		wantInbox(t, s, want)

		poison := newInboxEvent(domain.SourceSmartcar, now())
		poison.Status, poison.Outcome, poison.FinishedAt, poison.Type = domain.InboxPoison, "malformed", now(), ""
		addEvents(t, s, poison)
		wantInbox(t, s, poison)
	})

	t.Run("Add/SameKey/StoredOnce", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		first := newInboxEvent(domain.SourceSmartcar, now())
		addEvents(t, s, first)
		again := first
		again.Payload, again.ReceivedAt = []byte(`{"other":true}`), now().Add(time.Second)
		if ok, err := s.Add(t.Context(), again); err != nil || ok {
			t.Fatalf("Add of a stored key = %v, %v; want false, nil", ok, err)
		}
		wantInbox(t, s, first)
		other := first
		other.Source = domain.SourceApple
		addEvents(t, s, other) // the same id from another sender is another event
		wantInbox(t, s, other)
		mine := first
		mine.Source = domain.SourceAccount
		addEvents(t, s, mine) // and so is an owner's own account deletion
		wantInbox(t, s, mine)
	})

	t.Run("Add/ConcurrentSameKey/OneStored", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		e := newInboxEvent(domain.SourceSmartcar, now())
		stored := make([]bool, parallelism)
		errs := race(parallelism, func(i int) error {
			var err error
			stored[i], err = s.Add(t.Context(), e)
			return err
		})
		n := 0
		for i, err := range errs {
			if err != nil {
				t.Errorf("Add %d: %v", i, err)
			}
			if stored[i] {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d of %d concurrent Adds stored the event, want 1", n, parallelism)
		}
	})

	t.Run("Add/Invalid/ReturnsKindInvalid", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		for name, spoil := range map[string]func(*domain.InboxEvent){
			"unknown source": func(e *domain.InboxEvent) { e.Source = "github" },
			"empty id":       func(e *domain.InboxEvent) { e.ID = "" },
			"long id":        func(e *domain.InboxEvent) { e.ID = strings.Repeat("x", domain.MaxEventIDLen+1) },
			"no payload":     func(e *domain.InboxEvent) { e.Payload = nil },
			"unknown status": func(e *domain.InboxEvent) { e.Status = "done" },
		} {
			e := newInboxEvent(domain.SourceSmartcar, now())
			spoil(&e)
			if _, err := s.Add(t.Context(), e); domain.KindOf(err) != domain.KindInvalid {
				t.Errorf("Add with %s = %v, want a KindInvalid error", name, err)
			}
		}
	})

	t.Run("Get/Missing/ReturnsErrNotFound", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		_, err := s.Get(t.Context(), domain.SourceSmartcar, "evt-"+randomHex(12))
		wantErr(t, err, domain.ErrNotFound)
	})
}

func inboxFinish(t *testing.T, newStore func(t *testing.T) ports.WebhookInbox) {
	t.Run("Finish/IsFinalAndFirstWins", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		e := newInboxEvent(domain.SourceApple, now())
		addEvents(t, s, e)
		done := now().Add(time.Second)
		if err := s.Finish(t.Context(), e.Source, e.ID, domain.InboxProcessed, "sessions_revoked", true, done); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		want := e
		want.Status, want.Outcome, want.FinishedAt = domain.InboxProcessed, "sessions_revoked", done
		want.Payload = []byte{} // processed: only the key is kept, for deduplication
		wantInbox(t, s, want)
		if err := s.Finish(t.Context(), e.Source, e.ID, domain.InboxFailed, "failed", true, done.Add(time.Hour)); err != nil {
			t.Fatalf("second Finish: %v", err)
		}
		if err := s.Release(t.Context(), e.Source, e.ID, done, "late"); err != nil {
			t.Fatalf("Release after Finish: %v", err)
		}
		wantInbox(t, s, want)
	})

	// Only a spent outcome drops the body: a processed event that may be replayed (an unknown
	// vehicle) and a failed one keep it.
	for name, k := range map[string]struct {
		status  domain.InboxStatus
		outcome string
		spent   bool
	}{
		"ProcessedNotSpent": {domain.InboxProcessed, "unknown_vehicle", false},
		"Failed":            {domain.InboxFailed, "failed", true},
	} {
		t.Run("Finish/"+name+"KeepsItsPayload", func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			e := newInboxEvent(domain.SourceSmartcar, now())
			addEvents(t, s, e)
			done := now().Add(time.Second)
			if err := s.Finish(t.Context(), e.Source, e.ID, k.status, k.outcome, k.spent, done); err != nil {
				t.Fatalf("Finish: %v", err)
			}
			want := e
			want.Status, want.Outcome, want.FinishedAt = k.status, k.outcome, done
			wantInbox(t, s, want)
		})
	}

	t.Run("Finish/MissingOrBadStatus/Refused", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		wantErr(t, s.Finish(t.Context(), domain.SourceSmartcar, "evt-"+randomHex(12), domain.InboxProcessed, "x", false, now()), domain.ErrNotFound)
		wantErr(t, s.Release(t.Context(), domain.SourceSmartcar, "evt-"+randomHex(12), now(), "x"), domain.ErrNotFound)
		e := newInboxEvent(domain.SourceSmartcar, now())
		addEvents(t, s, e)
		for _, st := range []domain.InboxStatus{domain.InboxPending, domain.InboxPoison, "done"} {
			if err := s.Finish(t.Context(), e.Source, e.ID, st, "x", false, now()); domain.KindOf(err) != domain.KindInvalid {
				t.Errorf("Finish to %q = %v, want a KindInvalid error", st, err)
			}
		}
		wantInbox(t, s, e)
	})
}

func inboxClaim(t *testing.T, newStore func(t *testing.T) ports.WebhookInbox) {
	t.Run("OnlyDuePendingOldestFirstUnderLease", func(t *testing.T) {
		s := newStore(t)
		at := era(1960)
		a, b, c := newInboxEvent(domain.SourceSmartcar, at), newInboxEvent(domain.SourceApple, at.Add(time.Second)), newInboxEvent(domain.SourceSmartcar, at.Add(-time.Second))
		later := newInboxEvent(domain.SourceSmartcar, at.Add(time.Hour))
		poison := newInboxEvent(domain.SourceSmartcar, at)
		poison.Status, poison.FinishedAt = domain.InboxPoison, at
		done := newInboxEvent(domain.SourceSmartcar, at)
		addEvents(t, s, a, b, c, later, poison, done)
		if err := s.Finish(t.Context(), done.Source, done.ID, domain.InboxProcessed, "applied", true, at); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		claimAt := at.Add(time.Minute)
		got, err := s.Claim(t.Context(), claimAt, inboxLease, 10)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if diff := cmp.Diff(keys(got), keys([]domain.InboxEvent{c, a, b})); diff != "" {
			t.Fatalf("claimed (-got +want):\n%s", diff)
		}
		for _, e := range got {
			if e.Attempts != 1 || !e.AvailableAt.Equal(claimAt.Add(inboxLease)) || e.Status != domain.InboxPending {
				t.Errorf("claimed %s: attempts %d, available %v, status %s", e.ID, e.Attempts, e.AvailableAt, e.Status)
			}
		}
		wantC := c
		wantC.Attempts, wantC.AvailableAt = 1, claimAt.Add(inboxLease)
		wantInbox(t, s, wantC)
		if again, err := s.Claim(t.Context(), claimAt.Add(inboxLease-time.Microsecond), inboxLease, 10); err != nil || len(again) != 0 {
			t.Fatalf("Claim under the lease = %v, %v; want nothing", keys(again), err)
		}
		// The worker died: once the lease ends the events are handed out again.
		again, err := s.Claim(t.Context(), claimAt.Add(inboxLease), inboxLease, 2)
		if err != nil || len(again) != 2 || again[0].Attempts != 2 {
			t.Fatalf("Claim after the lease = %v, %v; want two events on their second attempt", keys(again), err)
		}
		finishAll(t, s, append(again, got...)...)
	})

	t.Run("ReleaseDelaysAndRecordsReason", func(t *testing.T) {
		s := newStore(t)
		at := era(1959)
		e := newInboxEvent(domain.SourceSmartcar, at)
		addEvents(t, s, e)
		got, err := s.Claim(t.Context(), at, inboxLease, 10)
		if err != nil || len(got) != 1 {
			t.Fatalf("Claim = %v, %v", keys(got), err)
		}
		retryAt := at.Add(30 * time.Second)
		if err := s.Release(t.Context(), e.Source, e.ID, retryAt, "upstream_unavailable"); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if early, err := s.Claim(t.Context(), retryAt.Add(-time.Microsecond), inboxLease, 10); err != nil || len(early) != 0 {
			t.Fatalf("Claim before the retry time = %v, %v; want nothing", keys(early), err)
		}
		got, err = s.Claim(t.Context(), retryAt, inboxLease, 10)
		if err != nil || len(got) != 1 || got[0].Attempts != 2 || got[0].LastError != "upstream_unavailable" {
			t.Fatalf("Claim at the retry time = %+v, %v; want the event on its second attempt with the reason", got, err)
		}
		finishAll(t, s, got...)
	})

	t.Run("Concurrent/EachEventToOneClaimer", func(t *testing.T) {
		s := newStore(t)
		at := era(1958)
		const n = 60
		events := make([]domain.InboxEvent, n)
		for i := range events {
			events[i] = newInboxEvent(domain.SourceSmartcar, at.Add(time.Duration(i)*time.Microsecond))
		}
		addEvents(t, s, events...)
		var (
			mu      sync.Mutex
			claimed []domain.InboxEvent
		)
		errs := race(parallelism, func(int) error {
			for {
				got, err := s.Claim(t.Context(), at.Add(time.Second), inboxLease, 3)
				if err != nil || len(got) == 0 {
					return err
				}
				mu.Lock()
				claimed = append(claimed, got...)
				mu.Unlock()
			}
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("Claim: %v", err)
		}
		seen := map[string]int{}
		for _, k := range keys(claimed) {
			seen[k]++
		}
		for _, k := range keys(events) {
			if seen[k] != 1 {
				t.Errorf("event %s claimed %d times, want once", k, seen[k])
			}
		}
		finishAll(t, s, claimed...)
	})

	t.Run("LimitAndZero", func(t *testing.T) {
		s := newStore(t)
		at := era(1957)
		addEvents(t, s, newInboxEvent(domain.SourceSmartcar, at), newInboxEvent(domain.SourceSmartcar, at.Add(time.Second)))
		if got, err := s.Claim(t.Context(), at.Add(time.Hour), inboxLease, 0); err != nil || len(got) != 0 {
			t.Fatalf("Claim with limit 0 = %v, %v; want nothing", keys(got), err)
		}
		got, err := s.Claim(t.Context(), at.Add(time.Hour), inboxLease, 1)
		if err != nil || len(got) != 1 {
			t.Fatalf("Claim with limit 1 = %v, %v; want one event", keys(got), err)
		}
		rest, err := s.Claim(t.Context(), at.Add(time.Hour), inboxLease, 5)
		if err != nil || len(rest) != 1 {
			t.Fatalf("second Claim = %v, %v; want the other event", keys(rest), err)
		}
		finishAll(t, s, append(got, rest...)...)
	})
}

// finishAll marks claimed events processed so that later claim subtests do not see them.
func finishAll(t *testing.T, s ports.WebhookInbox, events ...domain.InboxEvent) {
	t.Helper()
	for _, e := range events {
		if err := s.Finish(t.Context(), e.Source, e.ID, domain.InboxProcessed, "done", false, e.ReceivedAt); err != nil {
			t.Fatalf("Finish: %v", err)
		}
	}
}
