package command_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/app/command"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

func TestLockSucceedsAndUpdatesTheStatus(t *testing.T) {
	h := newHarness(t, command.Config{})
	h.run(h.svc)
	c := h.mustSubmit(0, "unlock")
	if c.Status != domain.CommandAccepted || c.Device != domain.DeviceWatch || c.SessionID != h.session {
		t.Fatalf("submitted %+v", c)
	}
	got := h.final(c.ID)
	if got.Status != domain.CommandSucceeded || got.UpstreamRequestID == "" || got.DispatchedAt == nil || got.FinishedAt == nil {
		t.Fatalf("final %+v", got)
	}
	if n := h.commands(0); n != 1 {
		t.Fatalf("%d commands reached the car, want 1", n)
	}
	v, err := h.conns.Vehicle(t.Context(), h.user, h.vehicles[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Status == nil || v.Status.Source != domain.StatusCommand || v.Status.Locked == nil || *v.Status.Locked {
		t.Fatalf("cached status %+v, want unlocked from the command", v.Status)
	}
	// The guard was released: the next command is admitted at once.
	h.final(h.mustSubmit(0, "lock").ID)
}

func TestSubmitRefusalsStoreNothing(t *testing.T) {
	h := newHarness(t, command.Config{})
	other := newHarness(t, command.Config{})
	cases := []struct {
		name string
		in   command.SubmitInput
		want *domain.Error
	}{
		{"unknown action", command.SubmitInput{Action: "open"}, domain.ErrCommandActionInvalid},
		{"upper-case action", command.SubmitInput{Action: "LOCK"}, domain.ErrCommandActionInvalid},
		{"long key", command.SubmitInput{Action: "lock", IdempotencyKey: strings.Repeat("k", 65)}, domain.ErrIdempotencyKeyInvalid},
		{"key with a slash", command.SubmitInput{Action: "lock", IdempotencyKey: "a/b"}, domain.ErrIdempotencyKeyInvalid},
		{"someone else's vehicle", command.SubmitInput{Action: "lock", VehicleID: other.vehicles[0].ID}, domain.ErrNotFound},
		{"no such vehicle", command.SubmitInput{Action: "lock", VehicleID: "nope"}, domain.ErrNotFound},
	}
	for _, tc := range cases {
		in := tc.in
		in.UserID, in.SessionID = h.user, h.session
		if in.VehicleID == "" {
			in.VehicleID = h.vehicles[0].ID
		}
		if _, err := h.svc.Submit(t.Context(), in); !errors.Is(err, tc.want) {
			t.Errorf("%s: Submit = %v, want %v", tc.name, err, tc.want)
		}
	}
	if list, _ := h.svc.History(t.Context(), h.user, h.vehicles[0].ID, "", 0); len(list) != 0 {
		t.Errorf("refusals stored %d commands", len(list))
	}
	if h.obs.refusals("ACTION_INVALID") != 2 || h.obs.refusals("NOT_FOUND") != 2 {
		t.Errorf("refusals counted %v", h.obs.refused)
	}
}

func TestUnusableLinkIsRefused(t *testing.T) {
	for _, tc := range []struct {
		status domain.ConnectionStatus
		want   *domain.Error
	}{{domain.ConnectionNeedsReauth, domain.ErrReauthRequired}, {domain.ConnectionRevoked, domain.ErrConsentRevoked}} {
		h := newHarness(t, command.Config{})
		if _, err := h.conns.Update(t.Context(), h.vehicles[0].ConnectionID, func(c *domain.Connection) error {
			c.Status = tc.status
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.submit(0, "lock", ""); !errors.Is(err, tc.want) {
			t.Errorf("%s: Submit = %v, want %v", tc.status, err, tc.want)
		}
	}
}

func TestIdempotencyKeyReplaysTheOriginal(t *testing.T) {
	h := newHarness(t, command.Config{})
	h.run(h.svc)
	first, err := h.submit(0, "lock", "key-1")
	if err != nil || first.Replayed {
		t.Fatalf("first = %+v, %v", first, err)
	}
	h.final(first.Command.ID)
	again, err := h.submit(0, "lock", "key-1")
	if err != nil || !again.Replayed || again.Command.ID != first.Command.ID || again.Command.Status != domain.CommandSucceeded {
		t.Fatalf("replay = %+v, %v", again, err)
	}
	if _, err := h.submit(0, "unlock", "key-1"); !errors.Is(err, domain.ErrIdempotencyKeyReused) {
		t.Fatalf("key reused for unlock: %v", err)
	}
	if n := h.commands(0); n != 1 {
		t.Fatalf("%d commands reached the car, want 1", n)
	}
}

func TestSecondCommandWhileInFlightIsRefused(t *testing.T) {
	h := newHarness(t, command.Config{})
	h.run(h.svc)
	reached := h.api.HangNextCommand()
	first := h.mustSubmit(0, "unlock")
	<-reached
	_, err := h.submit(0, "lock", "")
	r, ok := errors.AsType[*domain.CommandRefusal](err)
	if !ok || !errors.Is(err, domain.ErrCommandInFlight) || r.CommandID != first.ID || r.RetryAfterSeconds() < 1 {
		t.Fatalf("second = %v, want COMMAND_IN_FLIGHT naming %s", err, first.ID)
	}
	// The other car is not blocked.
	h.final(h.mustSubmit(1, "lock").ID)
	if h.obs.refusals("COMMAND_IN_FLIGHT") != 1 {
		t.Errorf("refusals counted %v", h.obs.refused)
	}
}

func TestUpstreamOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		prepare  func(h *harness)
		status   domain.CommandStatus
		code     string
		commands int
	}{
		{"asleep", func(h *harness) { h.api.SetCondition(h.vehicles[0].SmartcarID, memory.VehicleAsleep) }, domain.CommandFailed, "VEHICLE_ASLEEP", 0},
		{"unreachable", func(h *harness) { h.api.SetCondition(h.vehicles[0].SmartcarID, memory.VehicleUnreachable) }, domain.CommandFailed, "VEHICLE_UNREACHABLE", 0},
		{"driving", func(h *harness) { h.api.SetCondition(h.vehicles[0].SmartcarID, memory.VehicleDriving) }, domain.CommandFailed, "VEHICLE_IN_MOTION", 0},
		{"503 twice is retried", func(h *harness) {
			h.api.FailNext(memory.CallSecurity, 503)
			h.api.FailNext(memory.CallSecurity, 503)
		}, domain.CommandSucceeded, "", 1},
		{"503 three times gives up", func(h *harness) {
			for range 3 {
				h.api.FailNext(memory.CallSecurity, 503)
			}
		}, domain.CommandFailed, "UPSTREAM_UNAVAILABLE", 0},
		{"504 may have executed", func(h *harness) { h.api.FailNext(memory.CallSecurity, 504) }, domain.CommandUnknown, "UPSTREAM_UNAVAILABLE", 0},
		{"500 may have executed", func(h *harness) { h.api.FailNext(memory.CallSecurity, 500) }, domain.CommandUnknown, "UPSTREAM_UNAVAILABLE", 0},
		{"rejected token is refreshed", func(h *harness) { h.api.FailNext(memory.CallSecurity, 401) }, domain.CommandSucceeded, "", 1},
		{"consent revoked", func(h *harness) { h.api.FailNext(memory.CallSecurity, 403) }, domain.CommandFailed, "CONSENT_REVOKED", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, command.Config{})
			h.run(h.svc)
			tc.prepare(h)
			got := h.final(h.mustSubmit(0, "lock").ID)
			if got.Status != tc.status || got.ErrorCode != tc.code {
				t.Fatalf("ended %s %q, want %s %q", got.Status, got.ErrorCode, tc.status, tc.code)
			}
			if n := h.commands(0); n != tc.commands {
				t.Fatalf("%d commands reached the car, want %d", n, tc.commands)
			}
		})
	}
}

func TestUpstreamRateLimitPassesRetryAfter(t *testing.T) {
	h := newHarness(t, command.Config{})
	h.run(h.svc)
	h.api.RateLimit(h.vehicles[0].SmartcarID, 90*time.Second)
	got := h.final(h.mustSubmit(0, "lock").ID)
	if got.Status != domain.CommandFailed || got.ErrorCode != "RATE_LIMITED" || got.RetryAfter != 90*time.Second {
		t.Fatalf("ended %s %q retry after %v", got.Status, got.ErrorCode, got.RetryAfter)
	}
}

func TestHangAfterSendEndsUnknownOnDrainAndIsNeverResent(t *testing.T) {
	h := newHarness(t, command.Config{})
	w := h.svc.NewWorker()
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		w.Run(ctx)
	}()
	reached := h.api.HangNextCommand()
	c := h.mustSubmit(0, "unlock")
	<-reached
	cancel()
	<-stopped
	dctx, dcancel := context.WithCancel(context.Background())
	dcancel() // no time to drain: the send is cut short at once
	if err := w.Drain(dctx); err == nil {
		t.Error("Drain cut a send short and reported nothing")
	}
	got, err := h.svc.Get(t.Context(), h.user, c.ID, 0)
	if err != nil || got.Status != domain.CommandUnknown || got.ErrorCode != "UPSTREAM_TIMEOUT" {
		t.Fatalf("after drain: %+v, %v; want unknown UPSTREAM_TIMEOUT", got, err)
	}
	if n := h.commands(0); n != 1 {
		t.Fatalf("%d commands reached the car, want 1", n)
	}
	// The vehicle is free again.
	if _, err := h.submit(0, "lock", ""); err != nil {
		t.Fatalf("Submit after drain: %v", err)
	}
}

func TestNotSentWithinTTLExpires(t *testing.T) {
	h := newHarness(t, command.Config{TTL: time.Minute})
	at := time.Now()
	clock := &at
	svc := h.svc.WithClock(func() time.Time { return *clock })
	c, err := svc.Submit(t.Context(), command.SubmitInput{UserID: h.user, VehicleID: h.vehicles[0].ID, Action: "unlock"})
	if err != nil {
		t.Fatal(err)
	}
	late := at.Add(2 * time.Minute) // the worker only starts now, past the TTL
	clock = &late
	h.run(svc)
	got := h.final(c.Command.ID)
	if got.Status != domain.CommandExpired || got.ErrorCode != "COMMAND_EXPIRED" || got.DispatchedAt != nil {
		t.Fatalf("ended %+v, want expired and never dispatched", got)
	}
	if n := h.commands(0); n != 0 {
		t.Fatalf("%d commands reached the car after the TTL", n)
	}
}

func TestAbandonedDispatchedCommandIsSweptUnknown(t *testing.T) {
	h := newHarness(t, command.Config{})
	// A process admitted and dispatched the command, then died without renewing its lease.
	at := time.Now().Add(-time.Minute)
	c := domain.NewCommand(domain.CommandRequest{UserID: h.user, VehicleID: h.vehicles[0].ID,
		ConnectionID: h.vehicles[0].ConnectionID, Action: domain.CommandUnlock}, at, 30*time.Second)
	if _, err := h.cmds.Admit(t.Context(), c, at.Add(30*time.Second), ports.CommandRateLimit{}, at); err != nil {
		t.Fatal(err)
	}
	if _, err := h.cmds.Dispatch(t.Context(), c.ID, at, at.Add(20*time.Second)); err != nil {
		t.Fatal(err)
	}
	h.run(h.svc)
	got := h.final(c.ID)
	if got.Status != domain.CommandUnknown || got.ErrorCode != "COMMAND_ABANDONED" {
		t.Fatalf("ended %s %q, want unknown COMMAND_ABANDONED", got.Status, got.ErrorCode)
	}
	if n := h.commands(0); n != 0 {
		t.Fatalf("the abandoned command was sent again (%d)", n)
	}
}

func TestAcceptedCommandOfAStoppedProcessIsClaimed(t *testing.T) {
	h := newHarness(t, command.Config{ClaimGrace: time.Millisecond})
	// Another process admitted the command and stopped before sending it.
	c := domain.NewCommand(domain.CommandRequest{UserID: h.user, VehicleID: h.vehicles[0].ID,
		ConnectionID: h.vehicles[0].ConnectionID, Action: domain.CommandLock}, time.Now(), 30*time.Second)
	if _, err := h.cmds.Admit(t.Context(), c, c.Deadline, ports.CommandRateLimit{}, c.CreatedAt); err != nil {
		t.Fatal(err)
	}
	h.run(h.svc)
	if got := h.final(c.ID); got.Status != domain.CommandSucceeded {
		t.Fatalf("ended %s, want succeeded", got.Status)
	}
	if n := h.commands(0); n != 1 {
		t.Fatalf("%d commands reached the car, want 1", n)
	}
}

func TestUnlockRateLimitIsStricter(t *testing.T) {
	h := newHarness(t, command.Config{UnlockLimit: ports.CommandRateLimit{Window: time.Hour, Max: 1},
		LockLimit: ports.CommandRateLimit{Window: time.Hour, Max: 3}})
	h.run(h.svc)
	h.final(h.mustSubmit(0, "unlock").ID)
	_, err := h.submit(1, "unlock", "")
	if r, ok := errors.AsType[*domain.CommandRefusal](err); !ok || !errors.Is(err, domain.ErrCommandRateLimited) || r.RetryAfter <= 59*time.Minute {
		t.Fatalf("second unlock = %v, want RATE_LIMITED for about an hour", err)
	}
	h.final(h.mustSubmit(1, "lock").ID)
}

func TestGetAndHistoryAreTheOwnersOnly(t *testing.T) {
	h := newHarness(t, command.Config{})
	h.run(h.svc)
	var ids []domain.CommandID
	for range 3 {
		ids = append(ids, h.final(h.mustSubmit(0, "lock").ID).ID)
	}
	stranger := domain.NewUserID()
	if _, err := h.svc.Get(t.Context(), stranger, ids[0], 0); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("stranger Get = %v, want ErrNotFound", err)
	}
	if _, err := h.svc.History(t.Context(), stranger, h.vehicles[0].ID, "", 0); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("stranger History = %v, want ErrNotFound", err)
	}
	page, err := h.svc.History(t.Context(), h.user, h.vehicles[0].ID, "", 2)
	if err != nil || len(page) != 2 || page[0].ID != ids[2] || page[1].ID != ids[1] {
		t.Fatalf("first page = %v, %v", page, err)
	}
	rest, err := h.svc.History(t.Context(), h.user, h.vehicles[0].ID, page[1].ID, 2)
	if err != nil || len(rest) != 1 || rest[0].ID != ids[0] {
		t.Fatalf("second page = %v, %v", rest, err)
	}
	for _, bad := range []struct {
		before domain.CommandID
		limit  int
	}{{"x", 1}, {"", 101}, {"", -1}, {domain.NewCommandID(), 1}} {
		if _, err := h.svc.History(t.Context(), h.user, h.vehicles[0].ID, bad.before, bad.limit); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("History(%q, %d) = %v, want KindInvalid", bad.before, bad.limit, err)
		}
	}
}

func TestGetWaitsOnlyAsLongAsAsked(t *testing.T) {
	h := newHarness(t, command.Config{})
	c := h.mustSubmit(0, "lock") // no worker: it stays accepted
	start := time.Now()
	got, err := h.svc.Get(t.Context(), h.user, c.ID, 50*time.Millisecond)
	if err != nil || got.Status != domain.CommandAccepted {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Fatal("Get returned a non-final command before the wait was over")
	}
}
