package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/betterkey/backend/domain"
)

func newTestCommand(at time.Time) domain.Command {
	return domain.NewCommand(domain.CommandRequest{UserID: domain.NewUserID(), VehicleID: domain.NewVehicleID(),
		ConnectionID: domain.NewConnectionID(), Action: domain.CommandUnlock}, at, domain.DefaultCommandTTL)
}

func TestCommandLifecycleOnlyMovesForward(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	steps := map[string]func(*domain.Command) error{
		"dispatch": func(c *domain.Command) error { return c.Dispatch(at) },
		"succeed":  func(c *domain.Command) error { return c.Succeed(at, "req") },
		"fail":     func(c *domain.Command) error { return c.Fail(at, "VEHICLE_ASLEEP", "req", 0) },
		"unknown":  func(c *domain.Command) error { return c.MarkUnknown(at, "UPSTREAM_TIMEOUT", "") },
		"expire":   func(c *domain.Command) error { return c.Expire(at) },
		"abandon":  func(c *domain.Command) error { return c.Abandon(at) },
	}
	allowed := map[domain.CommandStatus][]string{
		domain.CommandAccepted:   {"dispatch", "expire", "abandon"},
		domain.CommandDispatched: {"succeed", "fail", "unknown", "expire", "abandon"},
	}
	reach := map[domain.CommandStatus][]string{
		domain.CommandAccepted: nil, domain.CommandDispatched: {"dispatch"},
		domain.CommandSucceeded: {"dispatch", "succeed"}, domain.CommandFailed: {"dispatch", "fail"},
		domain.CommandUnknown: {"dispatch", "unknown"}, domain.CommandExpired: {"expire"},
	}
	for from, path := range reach {
		for name, step := range steps {
			c := newTestCommand(at.Add(-time.Second))
			for _, p := range path {
				if err := steps[p](&c); err != nil {
					t.Fatalf("reaching %s via %s: %v", from, p, err)
				}
			}
			before := c
			err := step(&c)
			ok := false
			for _, a := range allowed[from] {
				ok = ok || a == name
			}
			switch {
			case ok && err != nil:
				t.Errorf("%s from %s: %v", name, from, err)
			case !ok && !errors.Is(err, domain.ErrCommandStateConflict):
				t.Errorf("%s from %s = %v, want ErrCommandStateConflict", name, from, err)
			case !ok && c.Status != before.Status:
				t.Errorf("refused %s from %s still changed the status", name, from)
			case ok && !c.Status.Final() && c.Status != domain.CommandDispatched:
				t.Errorf("%s from %s left status %s", name, from, c.Status)
			}
		}
	}
}

func TestCommandIsNeverDispatchedLate(t *testing.T) {
	at := time.Now()
	c := newTestCommand(at)
	if err := c.Dispatch(c.Deadline); !errors.Is(err, domain.ErrCommandExpired) || c.Status != domain.CommandAccepted {
		t.Fatalf("Dispatch at the deadline = %v (status %s), want ErrCommandExpired and no change", err, c.Status)
	}
	if err := c.Abandon(at); err != nil || c.Status != domain.CommandExpired || c.ErrorCode != "COMMAND_EXPIRED" {
		t.Fatalf("Abandon of an accepted command: %v %s %s", err, c.Status, c.ErrorCode)
	}
	d := newTestCommand(at)
	_ = d.Dispatch(at)
	if err := d.Abandon(at); err != nil || d.Status != domain.CommandUnknown || d.ErrorCode != "COMMAND_ABANDONED" {
		t.Fatalf("Abandon of a dispatched command: %v %s %s", err, d.Status, d.ErrorCode)
	}
}

func TestParseCommandActionAndKeys(t *testing.T) {
	for _, s := range []string{"lock", "unlock"} {
		if a, err := domain.ParseCommandAction(s); err != nil || string(a) != s {
			t.Errorf("ParseCommandAction(%q) = %q, %v", s, a, err)
		}
	}
	for _, s := range []string{"", "LOCK", "Unlock", "open", "lock "} {
		if _, err := domain.ParseCommandAction(s); !errors.Is(err, domain.ErrCommandActionInvalid) {
			t.Errorf("ParseCommandAction(%q) = %v, want ErrCommandActionInvalid", s, err)
		}
	}
	for _, k := range []string{"", "a", "0f8fad5b-d9cb-469f-a165-70867728950e", strings.Repeat("x", 64), "A_b-9"} {
		if err := domain.CheckIdempotencyKey(k); err != nil {
			t.Errorf("CheckIdempotencyKey(%q) = %v", k, err)
		}
	}
	for _, k := range []string{strings.Repeat("x", 65), "a b", "a/b", "é", "a\nb"} {
		if err := domain.CheckIdempotencyKey(k); !errors.Is(err, domain.ErrIdempotencyKeyInvalid) {
			t.Errorf("CheckIdempotencyKey(%q) = %v, want ErrIdempotencyKeyInvalid", k, err)
		}
	}
}

func TestCommandRefusalCarriesItsHints(t *testing.T) {
	id := domain.NewCommandID()
	var err error = &domain.CommandRefusal{Err: domain.ErrCommandInFlight, CommandID: id, RetryAfter: 1500 * time.Millisecond}
	if !errors.Is(err, domain.ErrCommandInFlight) || domain.KindOf(err) != domain.KindConflict {
		t.Fatalf("refusal does not classify as COMMAND_IN_FLIGHT: %v", err)
	}
	r, _ := errors.AsType[*domain.CommandRefusal](err)
	if r.RetryAfterSeconds() != 2 || domain.CeilSeconds(0) != 1 {
		t.Fatalf("RetryAfterSeconds = %d, want 2 (and never 0)", r.RetryAfterSeconds())
	}
}
