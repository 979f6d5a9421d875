package retention_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/app/retention"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/test/fakeclock"
)

var start = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	clock    *fakeclock.Clock
	sessions *memory.Sessions
	commands *memory.Commands
	inbox    *memory.WebhookInbox
	lock     *memory.JobLock
}

func newFixture() fixture {
	return fixture{clock: fakeclock.New(start), sessions: memory.NewSessions(), commands: memory.NewCommands(nil), inbox: memory.NewWebhookInbox(), lock: &memory.JobLock{}}
}

func (f fixture) janitor(t *testing.T, batch int) *retention.Service {
	t.Helper()
	s, err := retention.New(retention.Deps{Sessions: f.sessions, Commands: f.commands, Inbox: f.inbox, Lock: f.lock},
		retention.Config{Batch: batch})
	if err != nil {
		t.Fatal(err)
	}
	return s.WithClock(f.clock.Now)
}

func (f fixture) session(t *testing.T, created time.Time, revoked bool) domain.Session {
	t.Helper()
	x := domain.NewSession(domain.NewUserID(), "install", domain.DevicePhone, "", domain.HashToken(domain.NewOpaqueToken().Reveal()),
		created, domain.DefaultSessionLifetimes())
	if revoked {
		x.Revoke(created, domain.RevokeSignOut)
	}
	if err := f.sessions.Create(t.Context(), x); err != nil {
		t.Fatal(err)
	}
	return x
}

func (f fixture) event(t *testing.T, src domain.EventSource, received time.Time, settled bool) domain.InboxEvent {
	t.Helper()
	e := domain.InboxEvent{Source: src, ID: string(domain.NewCommandID()), Type: "t", Payload: []byte("{}"),
		Status: domain.InboxPending, ReceivedAt: received, AvailableAt: received}
	if settled {
		e.Status, e.FinishedAt, e.Outcome = domain.InboxProcessed, received, "applied"
	}
	if _, err := f.inbox.Add(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	return e
}

// recorder is an Observer that keeps what it heard.
type recorder map[string]int

func (r recorder) Purged(table string, rows int, _ time.Duration) { r[table] += rows }

const day = 24 * time.Hour

// A run deletes from every table what its default period has passed, in batches until a batch
// comes back short, and keeps everything younger, every live session and every pending event.
func TestRunDeletesWhatIsPastItsRetentionOnly(t *testing.T) {
	f := newFixture()
	def := domain.DefaultRetention()
	now := start
	f.session(t, now.Add(-def.Sessions-2*day), true) // revoked 32 days ago
	f.session(t, now.Add(-def.Sessions-2*day), true)
	f.session(t, now.Add(-def.Sessions-40*day), false) // idle expired 40 days ago
	kept := []domain.Session{f.session(t, now.Add(-def.Sessions+day), true), f.session(t, now.Add(-10*day), false)}
	for range 3 {
		f.event(t, domain.SourceSmartcar, now.Add(-def.Inbox-time.Hour), true)
	}
	f.event(t, domain.SourceApple, now.Add(-def.Inbox-time.Hour), true)
	pending := f.event(t, domain.SourceSmartcar, now.Add(-60*day), false)
	young := f.event(t, domain.SourceSmartcar, now.Add(-def.Inbox+time.Hour), true)
	deletion := f.event(t, domain.SourceAccount, now.Add(-def.Inbox-time.Hour), true) // kept: 30 days for deletions
	oldDeletion := f.event(t, domain.SourceAccount, now.Add(-def.DeletionRequests-time.Hour), true)

	heard := recorder{}
	rep, err := f.janitor(t, 2).Run(t.Context(), heard)
	if err != nil || !rep.Ran {
		t.Fatalf("Run = %+v, %v", rep, err)
	}
	want := map[string]int{retention.TableSessions: 3, retention.TableRefreshHistory: 0, retention.TableCommands: 0,
		retention.TableCommandAudit: 0, retention.TableInbox: 4, retention.TableDeletionRequests: 1}
	if diff := cmp.Diff(rep.Deleted, want); diff != "" {
		t.Errorf("deleted (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int(heard), want); diff != "" {
		t.Errorf("observer heard (-got +want):\n%s", diff)
	}
	for _, x := range kept {
		if _, err := f.sessions.Get(t.Context(), x.ID); err != nil {
			t.Errorf("kept session: %v", err)
		}
	}
	for _, e := range []domain.InboxEvent{pending, young, deletion} {
		if _, err := f.inbox.Get(t.Context(), e.Source, e.ID); err != nil {
			t.Errorf("kept event %s: %v", e.Source, err)
		}
	}
	if _, err := f.inbox.Get(t.Context(), oldDeletion.Source, oldDeletion.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("old deletion request: %v, want deleted", err)
	}
	if rep, err := f.janitor(t, 2).Run(t.Context(), nil); err != nil || rep.Total() != 0 {
		t.Errorf("second run = %+v, %v; want nothing left to delete", rep, err)
	}
}

// While another run holds the lock (another replica), a run skips without deleting.
func TestRunSkipsWhileAnotherRunHoldsTheLock(t *testing.T) {
	f := newFixture()
	f.session(t, start.Add(-100*day), true)
	j := f.janitor(t, 0)
	var inner retention.Report
	ran, err := f.lock.TryRun(t.Context(), "retention", func(ctx context.Context) error {
		var err error
		inner, err = j.Run(ctx, nil)
		return err
	})
	if !ran || err != nil || inner.Ran || inner.Total() != 0 {
		t.Fatalf("run under a held lock = %+v, %v; want skipped", inner, err)
	}
	if rep, err := j.Run(t.Context(), nil); err != nil || !rep.Ran || rep.Deleted[retention.TableSessions] != 1 {
		t.Fatalf("run after = %+v, %v", rep, err)
	}
}

// A run stops when its context ends, and says so.
func TestRunStopsWithItsContext(t *testing.T) {
	f := newFixture()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.janitor(t, 0).Run(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run on an ended context = %v", err)
	}
}

// Periods outside their bounds are refused before anything runs: a dedupe window shorter than a
// day would process a redelivery twice.
func TestNewRefusesPeriodsOutsideTheirBounds(t *testing.T) {
	f := newFixture()
	for name, edit := range map[string]func(*domain.Retention){
		"inbox under a day":   func(r *domain.Retention) { r.Inbox = time.Hour },
		"commands under 30d":  func(r *domain.Retention) { r.Commands = day },
		"sessions negative":   func(r *domain.Retention) { r.Sessions = -time.Hour },
		"deletions over 400d": func(r *domain.Retention) { r.DeletionRequests = 500 * day },
		"refresh under a day": func(r *domain.Retention) { r.RefreshHistory = time.Minute },
	} {
		r := domain.DefaultRetention()
		edit(&r)
		if _, err := retention.New(retention.Deps{Sessions: f.sessions, Commands: f.commands, Inbox: f.inbox, Lock: f.lock},
			retention.Config{Retention: r}); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("%s: New = %v, want invalid", name, err)
		}
	}
}
