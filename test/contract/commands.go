package contract

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// NewCommandStores returns a command store with the connection and user stores whose vehicles and
// accounts the commands belong to (real databases enforce that both exist).
type NewCommandStores func(t *testing.T) (ports.CommandStore, ports.ConnectionStore, ports.UserStore)

// commandTTL and commandLease are the suite's TTL and lease; times are passed explicitly, so
// nothing waits for them.
const (
	commandTTL   = 30 * time.Second
	commandLease = 20 * time.Second
)

// noLimit admits without a rate limit.
var noLimit = ports.CommandRateLimit{}

// CommandStore checks a ports.CommandStore against its doc comments. The subtests that claim or
// sweep across all vehicles run first and one at a time, so they only meet their own commands
// and leftovers of each other, which they tolerate; the rest run in parallel.
func CommandStore(t *testing.T, newStores NewCommandStores) {
	commandClaim(t, newStores)
	commandSweep(t, newStores)
	commandRetention(t, newStores)
	commandAdmit(t, newStores)
	commandAdmitGuard(t, newStores)
	commandAdmitIdempotency(t, newStores)
	commandAdmitRate(t, newStores)
	commandDispatch(t, newStores)
	commandUpdate(t, newStores)
	commandHistory(t, newStores)
	commandArchive(t, newStores)
}

// fleet is one user's connection with vehicles and the store under test.
type fleet struct {
	s        ports.CommandStore
	user     domain.UserID
	conn     domain.ConnectionID
	vehicles []domain.VehicleID
}

// seedFleet stores a user with one connection of n vehicles.
func seedFleet(t *testing.T, newStores NewCommandStores, n int) fleet {
	t.Helper()
	s, conns, users := newStores(t)
	return seedFleetIn(t, s, conns, users, n)
}

func seedFleetIn(t *testing.T, s ports.CommandStore, conns ports.ConnectionStore, users ports.UserStore, n int) fleet {
	t.Helper()
	u := seedUser(t, users)
	c := newConnection(t, u.ID, now(), connectionKeyVersion)
	vs := seedGrant(t, conns, c, n)
	f := fleet{s: s, user: u.ID, conn: c.ID}
	for _, v := range vs {
		f.vehicles = append(f.vehicles, v.ID)
	}
	return f
}

// command returns an accepted command for vehicle i created at.
func (f fleet) command(i int, action domain.CommandAction, at time.Time) domain.Command {
	return domain.NewCommand(domain.CommandRequest{
		UserID: f.user, VehicleID: f.vehicles[i], ConnectionID: f.conn, Action: action,
		SessionID: domain.NewSessionID(), Device: domain.DevicePhone,
	}, at, commandTTL)
}

// admit stores c at its creation time with the suite's lease and fails the test unless admitted.
func (f fleet) admit(t *testing.T, c domain.Command) domain.Command {
	t.Helper()
	a, err := f.s.Admit(t.Context(), c, c.CreatedAt.Add(commandLease), noLimit, c.CreatedAt)
	if err != nil || a.Replayed {
		t.Fatalf("Admit = %+v, %v; want admitted", a, err)
	}
	return a.Command
}

// wantCommand fails unless Get returns want.
func wantCommand(t *testing.T, s ports.CommandStore, want domain.Command) {
	t.Helper()
	got, err := s.Get(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Get (-got +want):\n%s", diff)
	}
}

// wantRefusal fails unless err is a *domain.CommandRefusal for target, naming holder, with a wait
// of about want.
func wantRefusal(t *testing.T, err error, target *domain.Error, holder domain.CommandID, want time.Duration) {
	t.Helper()
	r, ok := errors.AsType[*domain.CommandRefusal](err)
	if !ok {
		t.Fatalf("err = %v, want a *domain.CommandRefusal", err)
	}
	wantErr(t, err, target)
	if r.CommandID != holder {
		t.Errorf("refusal names command %q, want %q", r.CommandID, holder)
	}
	if d := r.RetryAfter - want; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("refusal waits %v, want %v", r.RetryAfter, want)
	}
}

func commandAdmit(t *testing.T, newStores NewCommandStores) {
	t.Run("Admit/StoresTheAcceptedCommand", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 1)
		c := f.command(0, domain.CommandUnlock, now())
		c.IdempotencyKey = "key-" + randomHex(8)
		got := f.admit(t, c)
		if diff := cmp.Diff(got, c); diff != "" {
			t.Errorf("Admit (-got +want):\n%s", diff)
		}
		wantCommand(t, f.s, c)
	})
	t.Run("Admit/Invalid/ReturnsKindInvalidAndStoresNothing", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 1)
		cases := map[string]func(*domain.Command){
			"dispatched":       func(c *domain.Command) { _ = c.Dispatch(c.CreatedAt) },
			"id not a uuid":    func(c *domain.Command) { c.ID = "c1" },
			"unknown action":   func(c *domain.Command) { c.Action = "honk" },
			"key too long":     func(c *domain.Command) { c.IdempotencyKey = randomHex(33) },
			"key with a space": func(c *domain.Command) { c.IdempotencyKey = "a b" },
			"session id":       func(c *domain.Command) { c.SessionID = "s1" },
		}
		for name, spoil := range cases {
			c := f.command(0, domain.CommandLock, now())
			spoil(&c)
			if _, err := f.s.Admit(t.Context(), c, c.CreatedAt.Add(commandLease), noLimit, c.CreatedAt); domain.KindOf(err) != domain.KindInvalid {
				t.Errorf("Admit with %s = %v, want a KindInvalid error", name, err)
			}
		}
		// Nothing was stored, so the guard is free.
		f.admit(t, f.command(0, domain.CommandLock, now()))
	})
	t.Run("Admit/UnknownVehicle/ReturnsNotFound", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 1)
		c := f.command(0, domain.CommandLock, now())
		c.VehicleID = domain.NewVehicleID()
		_, err := f.s.Admit(t.Context(), c, c.CreatedAt.Add(commandLease), noLimit, c.CreatedAt)
		wantErr(t, err, domain.ErrNotFound)
		if _, err := f.s.Get(t.Context(), c.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Get = %v, want ErrNotFound", err)
		}
	})
	t.Run("Get/Unknown/ReturnsNotFound", func(t *testing.T) {
		t.Parallel()
		s, _, _ := newStores(t)
		for _, id := range []domain.CommandID{domain.NewCommandID(), "not-a-uuid"} {
			if _, err := s.Get(t.Context(), id); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
			}
		}
	})
}

func commandAdmitGuard(t *testing.T, newStores NewCommandStores) {
	t.Run("Admit/WhileLeaseHeld/RefusesNamingTheHolder", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 2)
		at := now()
		first := f.admit(t, f.command(0, domain.CommandLock, at))
		second := f.command(0, domain.CommandUnlock, at.Add(5*time.Second))
		_, err := f.s.Admit(t.Context(), second, second.CreatedAt.Add(commandLease), noLimit, second.CreatedAt)
		wantRefusal(t, err, domain.ErrCommandInFlight, first.ID, commandLease-5*time.Second)
		if _, err := f.s.Get(t.Context(), second.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("refused command was stored: Get = %v", err)
		}
		// Another vehicle of the same owner is not blocked.
		f.admit(t, f.command(1, domain.CommandUnlock, at.Add(5*time.Second)))
	})
	t.Run("Admit/AfterLeaseExpired/TakesOverAndEndsTheAbandoned", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 2)
		at := now()
		sent := f.admit(t, f.command(0, domain.CommandUnlock, at))
		sent, err := f.s.Dispatch(t.Context(), sent.ID, at, at.Add(commandLease))
		if err != nil {
			t.Fatalf("Dispatch: %v", err)
		}
		waiting := f.admit(t, f.command(1, domain.CommandLock, at))
		later := at.Add(commandTTL + time.Minute)
		for i, old := range []domain.Command{sent, waiting} {
			next := f.admit(t, f.command(i, domain.CommandLock, later))
			if err := old.Abandon(later); err != nil {
				t.Fatal(err)
			}
			wantCommand(t, f.s, old)
			wantCommand(t, f.s, next)
		}
		got, _ := f.s.Get(t.Context(), sent.ID)
		if got.Status != domain.CommandUnknown || got.ErrorCode != domain.ErrCommandAbandoned.Code {
			t.Errorf("abandoned dispatched command is %s %s, want unknown %s", got.Status, got.ErrorCode, domain.ErrCommandAbandoned.Code)
		}
	})
	t.Run("Admit/Concurrent/OneVehicleAdmitsExactlyOne", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 1)
		at := now()
		cmds := make([]domain.Command, parallelism)
		for i := range cmds {
			cmds[i] = f.command(0, domain.CommandLock, at)
		}
		admitted := make([]domain.CommandID, parallelism)
		errs := race(parallelism, func(i int) error {
			a, err := f.s.Admit(t.Context(), cmds[i], at.Add(commandLease), noLimit, at)
			admitted[i] = a.Command.ID
			return err
		})
		var winner domain.CommandID
		for i, err := range errs {
			if err == nil {
				if winner != "" {
					t.Fatalf("two commands admitted for one vehicle: %s and %s", winner, admitted[i])
				}
				winner = admitted[i]
			}
		}
		if winner == "" {
			t.Fatal("no command admitted")
		}
		for _, err := range errs {
			if err != nil {
				wantRefusal(t, err, domain.ErrCommandInFlight, winner, commandLease)
			}
		}
	})
	t.Run("Admit/Concurrent/DistinctVehiclesAllAdmitted", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 8)
		at := now()
		for i, err := range race(len(f.vehicles), func(i int) error {
			_, err := f.s.Admit(t.Context(), f.command(i, domain.CommandLock, at), at.Add(commandLease), noLimit, at)
			return err
		}) {
			if err != nil {
				t.Errorf("vehicle %d: %v", i, err)
			}
		}
	})
}

func commandAdmitIdempotency(t *testing.T, newStores NewCommandStores) {
	t.Run("Admit/SameKey/ReplaysTheOriginalAndStoresNothing", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 2)
		at := now()
		orig := f.command(0, domain.CommandLock, at)
		orig.IdempotencyKey = "9b2c-" + randomHex(8)
		orig = f.admit(t, orig)
		ended, err := f.s.Update(t.Context(), orig.ID, func(c *domain.Command) error { return c.Expire(at) })
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		// A replay returns the original as it is now, even for another vehicle or action, and
		// even when that vehicle's guard is free.
		again := f.command(1, domain.CommandUnlock, at.Add(time.Second))
		again.IdempotencyKey = orig.IdempotencyKey
		a, err := f.s.Admit(t.Context(), again, again.CreatedAt.Add(commandLease), noLimit, again.CreatedAt)
		if err != nil || !a.Replayed {
			t.Fatalf("Admit replay = %+v, %v; want a replay", a, err)
		}
		if diff := cmp.Diff(a.Command, ended); diff != "" {
			t.Errorf("replay (-got +want):\n%s", diff)
		}
		if _, err := f.s.Get(t.Context(), again.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("replayed command was stored: Get = %v", err)
		}
		got, err := f.s.ByIdempotencyKey(t.Context(), f.user, orig.IdempotencyKey)
		if err != nil {
			t.Fatalf("ByIdempotencyKey: %v", err)
		}
		if diff := cmp.Diff(got, ended); diff != "" {
			t.Errorf("ByIdempotencyKey (-got +want):\n%s", diff)
		}
		for _, key := range []string{"unused-" + randomHex(4), ""} {
			if _, err := f.s.ByIdempotencyKey(t.Context(), f.user, key); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("ByIdempotencyKey(%q) = %v, want ErrNotFound", key, err)
			}
		}
		f.admit(t, f.command(1, domain.CommandUnlock, at.Add(time.Second)))
		// Keys are per user.
		other := seedFleet(t, newStores, 1)
		mine := other.command(0, domain.CommandLock, at)
		mine.IdempotencyKey = orig.IdempotencyKey
		other.admit(t, mine)
	})
	t.Run("Admit/SameKeyConcurrent/StoresOne", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 1)
		at := now()
		key := randomHex(16)
		ids := make([]domain.CommandID, parallelism)
		errs := race(parallelism, func(i int) error {
			c := f.command(0, domain.CommandLock, at)
			c.IdempotencyKey = key
			a, err := f.s.Admit(t.Context(), c, at.Add(commandLease), noLimit, at)
			ids[i] = a.Command.ID
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("Admit %d: %v", i, err)
			} else if ids[i] != ids[0] {
				t.Errorf("Admit %d returned command %s, want %s for every use of the key", i, ids[i], ids[0])
			}
		}
	})
}

func commandAdmitRate(t *testing.T, newStores NewCommandStores) {
	t.Run("Admit/RateLimit/CountsTheUsersRecentCommandsOfTheAction", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 4)
		limit := ports.CommandRateLimit{Window: time.Minute, Max: 2}
		at := now()
		admit := func(i int, action domain.CommandAction, when time.Time) error {
			_, err := f.s.Admit(t.Context(), f.command(i, action, when), when.Add(commandLease), limit, when)
			return err
		}
		if err := admit(0, domain.CommandUnlock, at.Add(-2*time.Minute)); err != nil { // outside the window
			t.Fatal(err)
		}
		for i, d := range []time.Duration{-40 * time.Second, -10 * time.Second} {
			if err := admit(i+1, domain.CommandUnlock, at.Add(d)); err != nil {
				t.Fatalf("unlock %d: %v", i, err)
			}
		}
		err := admit(3, domain.CommandUnlock, at)
		wantRefusal(t, err, domain.ErrCommandRateLimited, "", 20*time.Second)
		if err := admit(3, domain.CommandLock, at); err != nil {
			t.Errorf("a lock counted against the unlock limit: %v", err)
		}
		// A command in flight is reported before the rate limit.
		err = admit(2, domain.CommandUnlock, at)
		if !errors.Is(err, domain.ErrCommandInFlight) {
			t.Errorf("Admit for a vehicle in flight at the limit = %v, want ErrCommandInFlight", err)
		}
	})

	// The drift case: a refusal whose true wait is under a second names a second, in every store
	// (it used to be the database alone), so no app is told to retry into the same refusal.
	t.Run("Admit/Refusals/WaitAtLeastASecond", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 3)
		limit := ports.CommandRateLimit{Window: time.Minute, Max: 1}
		at := now()
		first := f.admit(t, f.command(0, domain.CommandUnlock, at.Add(-time.Minute+300*time.Millisecond)))
		_, err := f.s.Admit(t.Context(), f.command(1, domain.CommandUnlock, at), at.Add(commandLease), limit, at)
		wantRefusal(t, err, domain.ErrCommandRateLimited, "", time.Second)
		// The first command's lease has 300 ms left at the end of the window's second.
		leaseEnd := first.CreatedAt.Add(commandLease)
		_, err = f.s.Admit(t.Context(), f.command(0, domain.CommandLock, leaseEnd.Add(-300*time.Millisecond)), leaseEnd, noLimit,
			leaseEnd.Add(-300*time.Millisecond))
		wantRefusal(t, err, domain.ErrCommandInFlight, first.ID, time.Second)
	})
}
