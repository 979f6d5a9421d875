package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/app/retention"
	"github.com/betterkey/backend/app/webhook"
	"github.com/betterkey/backend/domain"
)

// chanObserver hands every result to the test over a channel, so the test waits for the worker
// instead of sleeping.
type chanObserver struct {
	results chan webhook.Result
	errs    chan error
}

func (o chanObserver) Processed(r webhook.Result) { o.results <- r }
func (o chanObserver) ClaimFailed(err error)      { o.errs <- err }

func TestRunWakesOnIngestAndStopsWithItsContext(t *testing.T) {
	h := newHarness(t, webhook.Config{PollInterval: time.Hour}) // only the wake-up can start a drain
	l := h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	o := chanObserver{results: make(chan webhook.Result), errs: make(chan error)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.svc.Run(ctx, o)
	}()
	ev := stateEvent("sc-user-1", "sc-car-1", true, start)
	if _, err := h.deliver(t, currentSecret, h.body(t, ev)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-o.results:
		want := webhook.Result{Source: domain.SourceSmartcar, ID: ev.ID, Type: "VEHICLE_STATE", Outcome: webhook.OutcomeApplied}
		if diff := cmp.Diff(r, want); diff != "" {
			t.Fatalf("result (-got +want):\n%s", diff)
		}
	case err := <-o.errs:
		t.Fatal(err)
	case <-t.Context().Done():
		t.Fatal("the worker never processed the event")
	}
	if st := h.status(t, l, 0); st == nil || !*st.Locked {
		t.Fatalf("status %+v", st)
	}
	cancel()
	select {
	case <-done:
	case <-t.Context().Done():
		t.Fatal("Run did not return after its context ended")
	}
}

func TestFailedAttemptsBackOffThenGiveUp(t *testing.T) {
	h := newHarness(t, webhook.Config{MaxAttempts: 3, RetryBase: 10 * time.Second})
	h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	failing := &failingStatus{Connections: h.conns, n: 100}
	h.rebuild(func(d *webhook.Deps) { d.Connections = failing })
	ev := stateEvent("sc-user-1", "sc-car-1", true, start)
	if _, err := h.deliver(t, currentSecret, h.body(t, ev)); err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	var outcomes []webhook.Outcome
	for range 3 {
		outcomes = append(outcomes, h.process(t)...)
		e, err := h.inbox.Get(t.Context(), domain.SourceSmartcar, ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		if out := h.process(t); len(out) != 0 {
			t.Fatalf("retried before its backoff: %v", out)
		}
		waits = append(waits, e.AvailableAt.Sub(h.clock.Now()))
		h.clock.Advance(e.AvailableAt.Sub(h.clock.Now()))
	}
	if diff := cmp.Diff(outcomes, []webhook.Outcome{webhook.OutcomeRetry, webhook.OutcomeRetry, webhook.OutcomeFailed}); diff != "" {
		t.Fatalf("outcomes (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(waits[:2], []time.Duration{10 * time.Second, 20 * time.Second}); diff != "" {
		t.Fatalf("backoff (-got +want):\n%s", diff)
	}
	e, _ := h.inbox.Get(t.Context(), domain.SourceSmartcar, ev.ID)
	if e.Status != domain.InboxFailed || e.Attempts != 3 || e.LastError == "" {
		t.Fatalf("after giving up: %+v", e)
	}
}

func TestAnEventWhoseWorkerDiedIsProcessedAfterItsLease(t *testing.T) {
	h := newHarness(t, webhook.Config{Lease: time.Minute})
	l := h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	ev := stateEvent("sc-user-1", "sc-car-1", false, start)
	if _, err := h.deliver(t, currentSecret, h.body(t, ev)); err != nil {
		t.Fatal(err)
	}
	// A worker claims the event and dies before it records anything (a crash, a restart).
	if got, err := h.inbox.Claim(t.Context(), h.clock.Now(), time.Minute, 10); err != nil || len(got) != 1 {
		t.Fatalf("Claim = %v, %v", got, err)
	}
	if out := h.process(t); len(out) != 0 {
		t.Fatalf("processed under another worker's lease: %v", out)
	}
	h.clock.Advance(time.Minute)
	if diff := cmp.Diff(h.process(t), []webhook.Outcome{webhook.OutcomeApplied}); diff != "" {
		t.Fatalf("after the lease (-got +want):\n%s", diff)
	}
	if st := h.status(t, l, 0); st == nil || *st.Locked {
		t.Fatalf("status %+v", st)
	}
}

// The retention janitor keeps a settled event for BETTERKEY_RETENTION_INBOX, and a redelivery
// inside that window is recognised as a duplicate.
func TestRetentionKeepsTheDedupeWindow(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	r := domain.DefaultRetention()
	r.Inbox = 24 * time.Hour
	janitor, err := retention.New(retention.Deps{Sessions: h.sessions, Commands: memory.NewCommands(nil), Inbox: h.inbox,
		Lock: &memory.JobLock{}}, retention.Config{Retention: r})
	if err != nil {
		t.Fatal(err)
	}
	janitor = janitor.WithClock(h.clock.Now)
	h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	ev := stateEvent("sc-user-1", "sc-car-1", false, start)
	if _, err := h.deliver(t, currentSecret, h.body(t, ev)); err != nil {
		t.Fatal(err)
	}
	h.process(t)
	h.clock.Advance(23 * time.Hour)
	if rep, err := janitor.Run(t.Context(), nil); err != nil || rep.Deleted[retention.TableInbox] != 0 {
		t.Fatalf("janitor inside the window = %+v, %v", rep, err)
	}
	if rec, _ := h.deliver(t, currentSecret, h.body(t, ev)); rec.Outcome != webhook.OutcomeDuplicate {
		t.Fatalf("a redelivery inside the window: %v", rec.Outcome)
	}
	h.clock.Advance(2 * time.Hour)
	if rep, err := janitor.Run(t.Context(), nil); err != nil || rep.Deleted[retention.TableInbox] != 1 {
		t.Fatalf("janitor after the window = %+v, %v", rep, err)
	}
	if _, err := h.inbox.Get(t.Context(), domain.SourceSmartcar, ev.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("Get after the janitor: %v", err)
	}
}

// One batch holding many cars' events, delivered out of order, is processed by concurrent
// partitions: every event is accounted for once, in claim order, and each car ends with its
// newest observation whatever order its events arrived in.
func TestConcurrentPartitionsKeepTheNewestObservationPerCar(t *testing.T) {
	h := newHarness(t, webhook.Config{Workers: 8, Batch: 200})
	const cars, perCar = 6, 10
	var fleet []linked
	for c := range cars {
		fleet = append(fleet, h.link(t, fmt.Sprintf("sub-%d", c), fmt.Sprintf("sc-user-%d", c), fmt.Sprintf("sc-car-%d", c)))
	}
	var ids []string
	for k := range perCar {
		for c := range cars {
			i := perCar - 1 - k // newest first: the first delivered is the one that must win
			if k%3 == 1 {
				i = k
			}
			ev := stateEvent(fmt.Sprintf("sc-user-%d", c), fmt.Sprintf("sc-car-%d", c), (i+c)%2 == 0, start.Add(time.Duration(i)*time.Second))
			if _, err := h.deliver(t, currentSecret, h.body(t, ev)); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, ev.ID)
			h.clock.Advance(time.Millisecond) // the inbox hands events out in the order they arrived
		}
	}
	results, err := h.svc.ProcessDue(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(ids) {
		t.Fatalf("%d results for %d events", len(results), len(ids))
	}
	for i, r := range results {
		if r.ID != ids[i] || (r.Outcome != webhook.OutcomeApplied && r.Outcome != webhook.OutcomeStale) {
			t.Fatalf("result %d = %+v, want event %s applied or stale, in claim order", i, r, ids[i])
		}
	}
	for c, l := range fleet {
		newest := perCar - 1
		st := h.status(t, l, 0)
		if st == nil || *st.Locked != ((newest+c)%2 == 0) || !st.ObservedAt.Equal(start.Add(time.Duration(newest)*time.Second)) {
			t.Errorf("car %d status %+v, want its newest observation", c, st)
		}
	}
}

// An applied event keeps only its key; one about a car nobody has linked (yet) keeps its body, so
// it can be replayed once the car is linked or a decoder is fixed.
func TestOnlySpentEventsDropTheirBody(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	applied := stateEvent("sc-user-1", "sc-car-1", true, start)
	unknown := stateEvent("sc-user-9", "sc-car-9", true, start)
	for _, ev := range []smartcarsim.Event{applied, unknown} {
		if _, err := h.deliver(t, currentSecret, h.body(t, ev)); err != nil {
			t.Fatal(err)
		}
		h.clock.Advance(time.Millisecond)
	}
	if diff := cmp.Diff(h.process(t), []webhook.Outcome{webhook.OutcomeApplied, webhook.OutcomeUnknownVehicle}); diff != "" {
		t.Fatalf("outcomes (-got +want):\n%s", diff)
	}
	for ev, keep := range map[string]bool{applied.ID: false, unknown.ID: true} {
		e, err := h.inbox.Get(t.Context(), domain.SourceSmartcar, ev)
		if err != nil || (len(e.Payload) > 0) != keep {
			t.Errorf("event %s: payload of %d bytes, %v; want kept %v", ev, len(e.Payload), err, keep)
		}
	}
}
