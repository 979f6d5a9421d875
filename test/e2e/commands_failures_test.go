package e2e

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// TestUpstreamRefusalsMapToStableCodes: the vehicle's refusals end the command failed with a
// stable code, nothing is retried, and a rate limit passes Smartcar's Retry-After on.
func TestUpstreamRefusalsMapToStableCodes(t *testing.T) {
	e := startServer(t)
	s, cars := e.garage(4)
	for i, tc := range []struct {
		condition smartcarsim.Condition
		code      string
	}{
		{smartcarsim.ConditionAsleep, "VEHICLE_ASLEEP"},
		{smartcarsim.ConditionUnreachable, "VEHICLE_UNREACHABLE"},
		{smartcarsim.ConditionDriving, "VEHICLE_IN_MOTION"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			if err := e.sc.SetCondition(cars[i].sc, tc.condition); err != nil {
				t.Fatal(err)
			}
			r := e.lock(s.access, cars[i].id, "unlock")
			if r.status != http.StatusOK || r.str("status") != "failed" || r.str("error_code") != tc.code {
				t.Fatalf("got %d %s, want failed %s", r.status, r.raw, tc.code)
			}
			if n := e.carCommands(cars[i]); n != 0 {
				t.Fatalf("%d commands reached the car", n)
			}
		})
	}
	t.Run("RATE_LIMITED", func(t *testing.T) {
		if err := e.sc.RateLimit(cars[3].sc, 90*time.Second); err != nil {
			t.Fatal(err)
		}
		r := e.lock(s.access, cars[3].id, "lock")
		secs, _ := strconv.Atoi(r.header.Get("Retry-After"))
		if r.str("status") != "failed" || r.str("error_code") != "RATE_LIMITED" || secs < 89 || secs > 90 ||
			r.body["retry_after_seconds"] != float64(secs) {
			t.Fatalf("got %d %s Retry-After=%q", r.status, r.raw, r.header.Get("Retry-After"))
		}
	})
}

// TestUnknownAfterSendIsNeverRetried: when the command reached the car and the answer was lost
// (a reset, a server error after the effect), the command ends unknown and is not sent again;
// when the upstream's edge refused it before it went anywhere (503), it is retried and succeeds.
func TestUnknownAfterSendIsNeverRetried(t *testing.T) {
	e := startServer(t)
	s, cars := e.garage(3)
	for i, tc := range []struct {
		name   string
		fault  smartcarsim.Fault
		status string
		sent   int
	}{
		{"reset after the effect", smartcarsim.Fault{Drop: true, AfterEffect: true, Times: 1}, "unknown", 1},
		{"500 after the effect", smartcarsim.Fault{Status: http.StatusInternalServerError, AfterEffect: true, Times: 1}, "unknown", 1},
		{"503 before anything", smartcarsim.Fault{Status: http.StatusServiceUnavailable, Times: 1}, "succeeded", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fired := make(chan smartcarsim.Endpoint, 1)
			tc.fault.Fired = fired
			e.sc.SetFault(smartcarsim.EndpointSecurity, tc.fault)
			r := e.final(s.access, e.lock(s.access, cars[i].id, "unlock").str("id"))
			<-fired
			if r.str("status") != tc.status {
				t.Fatalf("ended %s, want %s", r.raw, tc.status)
			}
			if n := e.carCommands(cars[i]); n != tc.sent {
				t.Fatalf("%d commands reached the car, want %d", n, tc.sent)
			}
		})
	}
}

// TestStoppedWhileInFlight: a replica stops while its command hangs at the car. Its drain runs
// out of time, so the send is cut short and the command ends unknown, never resent; the vehicle
// takes a new command through the other replica right away.
func TestStoppedWhileInFlight(t *testing.T) {
	a := startServer(t)
	s, cars := a.garage(1)
	b, stopB := a.replica()
	fired := make(chan smartcarsim.Endpoint, 1)
	a.sc.SetFault(smartcarsim.EndpointSecurity, smartcarsim.Fault{Hang: true, AfterEffect: true, Times: 1, Fired: fired})
	r := b.lock(s.access, cars[0].id, "unlock")
	b.expect(r, http.StatusAccepted, "")
	<-fired // the car executed it; the answer hangs

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = stopB(ctx) // the stop deadline is too short for the hanging send

	if got := a.final(s.access, r.str("id")); got.str("status") != "unknown" {
		t.Fatalf("the interrupted command is %s", got.raw)
	}
	next := a.lock(s.access, cars[0].id, "lock")
	if next.status != http.StatusOK || next.str("status") != "succeeded" {
		t.Fatalf("next command: %d %s", next.status, next.raw)
	}
	if n := a.carCommands(cars[0]); n != 2 {
		t.Fatalf("%d commands reached the car, want 2 (the interrupted one was not resent)", n)
	}
}

// TestCrashedProcessLeftovers plays what a process killed mid-command leaves in the database
// (it wrote through the same store, then stopped renewing its lease): a dispatched command whose
// lease ran out ends unknown and the vehicle takes a new command at once; an accepted command
// past its TTL expires unsent; an accepted command still within its TTL is sent by the survivor.
func TestCrashedProcessLeftovers(t *testing.T) {
	e := startServer(t)
	s, cars := e.garage(3)
	store := postgres.NewCommands(e.store())
	user := domain.UserID(s.userID)
	conn := e.connectionOf(user, cars[0].id)
	crashed := func(i int, action domain.CommandAction, at time.Time, dispatched bool) domain.Command {
		c := domain.NewCommand(domain.CommandRequest{UserID: user, VehicleID: domain.VehicleID(cars[i].id),
			ConnectionID: conn, Action: action}, at, domain.DefaultCommandTTL)
		if _, err := store.Admit(t.Context(), c, c.Deadline, ports.CommandRateLimit{}, at); err != nil {
			t.Fatal(err)
		}
		if dispatched {
			var err error
			if c, err = store.Dispatch(t.Context(), c.ID, at, at.Add(20*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	now := time.Now()
	inFlight := crashed(0, domain.CommandUnlock, now.Add(-25*time.Second), true) // lease ended 5 s ago
	stale := crashed(1, domain.CommandUnlock, now.Add(-40*time.Second), false)   // TTL ended 10 s ago
	pending := crashed(2, domain.CommandLock, now.Add(-3*time.Second), false)    // 27 s of TTL left

	next := e.lock(s.access, cars[0].id, "lock")
	if next.status != http.StatusOK || next.str("status") != "succeeded" {
		t.Fatalf("command after the lease ran out: %d %s", next.status, next.raw)
	}
	for _, tc := range []struct {
		c      domain.Command
		status string
		code   string
		sent   int
		car    car
	}{
		{inFlight, "unknown", "COMMAND_ABANDONED", 1, cars[0]}, // only the new command was sent
		{stale, "expired", "COMMAND_EXPIRED", 0, cars[1]},
		{pending, "succeeded", "", 1, cars[2]},
	} {
		r := e.final(s.access, string(tc.c.ID))
		if r.str("status") != tc.status || r.str("error_code") != tc.code {
			t.Errorf("command %s ended %s, want %s %s", tc.c.ID, r.raw, tc.status, tc.code)
		}
		if n := e.carCommands(tc.car); n != tc.sent {
			t.Errorf("car %s got %d commands, want %d", tc.car.id, n, tc.sent)
		}
	}
}

// connectionOf reads a vehicle's connection id through the store; the API never shows it.
func (e *env) connectionOf(user domain.UserID, vehicle string) domain.ConnectionID {
	e.t.Helper()
	v, err := postgres.NewConnections(e.store()).Vehicle(e.t.Context(), user, domain.VehicleID(vehicle))
	if err != nil {
		e.t.Fatal(err)
	}
	return v.ConnectionID
}

// TestPerUserUnlockLimit: the eleventh unlock within ten minutes is refused 429 with Retry-After
// (the limit lives in PostgreSQL, so replicas share it), and locks have their own, larger budget.
func TestPerUserUnlockLimit(t *testing.T) {
	a := startServer(t)
	b := a.another()
	s, cars := a.garage(1)
	for i := range 10 {
		srv := []*env{a, b}[i%2]
		if r := srv.lock(s.access, cars[0].id, "unlock"); r.status != http.StatusOK {
			t.Fatalf("unlock %d: %d %s", i, r.status, r.raw)
		}
	}
	r := b.lock(s.access, cars[0].id, "unlock")
	secs, _ := strconv.Atoi(r.header.Get("Retry-After"))
	if r.status != http.StatusTooManyRequests || r.str("code") != "RATE_LIMITED" || secs < 590 || secs > 600 ||
		r.body["retry_after_seconds"] != float64(secs) {
		t.Fatalf("eleventh unlock: %d %s Retry-After=%q", r.status, r.raw, r.header.Get("Retry-After"))
	}
	a.expect(a.lock(s.access, cars[0].id, "lock"), http.StatusOK, "")
	if n := a.carCommands(cars[0]); n != 11 {
		t.Fatalf("%d commands reached the car, want 11", n)
	}
}
