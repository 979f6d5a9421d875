package webhook_test

import (
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/app/webhook"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

func TestLockStateSettlesAnUnknownCommand(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	l := h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	commands := memory.NewCommands(h.conns)
	h.rebuild(func(d *webhook.Deps) { d.Commands = commands })
	// A lock was sent at start and timed out: nobody knows whether the car locked.
	c := domain.NewCommand(domain.CommandRequest{UserID: l.user.ID, VehicleID: l.vehicles[0].ID, ConnectionID: l.conn.ID,
		Action: domain.CommandLock, SessionID: l.session.ID, Device: domain.DevicePhone}, start.Add(-time.Second), domain.DefaultCommandTTL)
	if _, err := commands.Admit(t.Context(), c, start.Add(time.Minute), ports.CommandRateLimit{}, start.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := commands.Dispatch(t.Context(), c.ID, start, start.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := commands.Update(t.Context(), c.ID, func(x *domain.Command) error {
		return x.MarkUnknown(start.Add(time.Minute), domain.ErrUpstreamTimeout.Code, "req-1")
	}); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		locked bool
		at     time.Time
		want   domain.CommandStatus
	}{
		{true, start.Add(-time.Minute), domain.CommandUnknown}, // observed before the send: proves nothing
		{false, start.Add(time.Second), domain.CommandUnknown}, // unlocked after a lock: proves nothing
		{true, start.Add(2 * time.Second), domain.CommandSucceeded},
	} {
		if _, err := h.deliver(t, currentSecret, h.body(t, stateEvent("sc-user-1", "sc-car-1", step.locked, step.at))); err != nil {
			t.Fatal(err)
		}
		h.process(t)
		got, err := commands.Get(t.Context(), c.ID)
		if err != nil || got.Status != step.want {
			t.Fatalf("after a %v observation at %v: %s (%v), want %s", step.locked, step.at, got.Status, err, step.want)
		}
	}
}
