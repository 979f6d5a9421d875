package contract

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// SettlingCommandStore is a command store in its two roles: keeping commands and settling the
// unknown ones.
type SettlingCommandStore interface {
	ports.CommandStore
	ports.CommandSettler
}

// unknownCommand admits, dispatches at at+1s and ends unknown at at+2s a command for vehicle i.
func (f fleet) unknownCommand(t *testing.T, i int, action domain.CommandAction, at time.Time) domain.Command {
	t.Helper()
	c := f.admit(t, f.command(i, action, at))
	if _, err := f.s.Dispatch(t.Context(), c.ID, at.Add(time.Second), at.Add(commandLease)); err != nil {
		t.Fatal(err)
	}
	c, err := f.s.Update(t.Context(), c.ID, func(x *domain.Command) error {
		return x.MarkUnknown(at.Add(2*time.Second), domain.ErrUpstreamTimeout.Code, "req-1")
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// CommandSettler checks a ports.CommandSettler against its doc comment. newStores is called once
// per subtest; the stores may share one database.
func CommandSettler(t *testing.T, newStores func(t *testing.T) (SettlingCommandStore, ports.ConnectionStore, ports.UserStore)) {
	fleetOf := func(t *testing.T, n int) (fleet, SettlingCommandStore) {
		s, conns, users := newStores(t)
		return seedFleetIn(t, s, conns, users, n), s
	}
	t.Run("SettleUnknown/MatchingLaterObservationSucceeds", func(t *testing.T) {
		t.Parallel()
		f, s := fleetOf(t, 2)
		at := now()
		lock := f.unknownCommand(t, 0, domain.CommandLock, at)
		other := f.unknownCommand(t, 1, domain.CommandLock, at) // another vehicle's
		settledAt := at.Add(time.Minute)
		got, err := s.SettleUnknown(t.Context(), f.vehicles[0], true, at.Add(30*time.Second), settledAt)
		if err != nil {
			t.Fatalf("SettleUnknown: %v", err)
		}
		want := lock
		want.Status, want.ErrorCode, want.UpdatedAt = domain.CommandSucceeded, "", settledAt
		if diff := cmp.Diff(got, []domain.Command{want}); diff != "" {
			t.Fatalf("settled (-got +want):\n%s", diff)
		}
		wantCommand(t, s, want)
		wantCommand(t, s, other)
		if again, err := s.SettleUnknown(t.Context(), f.vehicles[0], true, at.Add(40*time.Second), settledAt); err != nil || len(again) != 0 {
			t.Fatalf("second SettleUnknown = %v, %v; want nothing", again, err)
		}
	})

	t.Run("SettleUnknown/NothingProvenLeavesItUnknown", func(t *testing.T) {
		t.Parallel()
		f, s := fleetOf(t, 1)
		at := now()
		unlock := f.unknownCommand(t, 0, domain.CommandUnlock, at)
		for name, obs := range map[string]struct {
			locked bool
			at     time.Time
		}{
			"the other state":             {true, at.Add(time.Minute)},
			"observed before the send":    {false, at},
			"observed at the send":        {false, at.Add(time.Second)},
			"observed long after":         {false, at.Add(time.Second + domain.SettleWindow + time.Minute)},
			"a lock state for a stranger": {false, at.Add(time.Minute)},
		} {
			vehicle := f.vehicles[0]
			if name == "a lock state for a stranger" {
				vehicle = domain.NewVehicleID()
			}
			if got, err := s.SettleUnknown(t.Context(), vehicle, obs.locked, obs.at, at.Add(time.Hour)); err != nil || len(got) != 0 {
				t.Errorf("SettleUnknown with %s = %v, %v; want nothing", name, got, err)
			}
		}
		wantCommand(t, s, unlock)
		got, err := s.SettleUnknown(t.Context(), f.vehicles[0], false, at.Add(time.Minute), at.Add(time.Hour))
		if err != nil || len(got) != 1 || got[0].Status != domain.CommandSucceeded {
			t.Fatalf("SettleUnknown with the unlocked state = %v, %v; want the unlock settled", got, err)
		}
	})

	t.Run("SettleUnknown/LeavesOtherStatesAlone", func(t *testing.T) {
		t.Parallel()
		f, s := fleetOf(t, 1)
		at := now()
		failed := f.admit(t, f.command(0, domain.CommandLock, at))
		if _, err := f.s.Dispatch(t.Context(), failed.ID, at, at.Add(commandLease)); err != nil {
			t.Fatal(err)
		}
		failed, err := f.s.Update(t.Context(), failed.ID, func(x *domain.Command) error {
			return x.Fail(at.Add(time.Second), domain.ErrVehicleAsleep.Code, "req", 0)
		})
		if err != nil {
			t.Fatal(err)
		}
		inFlight := f.admit(t, f.command(0, domain.CommandLock, at.Add(2*time.Second)))
		if got, err := s.SettleUnknown(t.Context(), f.vehicles[0], true, at.Add(time.Minute), at.Add(time.Hour)); err != nil || len(got) != 0 {
			t.Fatalf("SettleUnknown = %v, %v; want nothing", got, err)
		}
		wantCommand(t, s, failed)
		wantCommand(t, s, inFlight)
	})

	t.Run("SettleUnknown/Concurrent/SettlesOnce", func(t *testing.T) {
		t.Parallel()
		f, s := fleetOf(t, 1)
		at := now()
		f.unknownCommand(t, 0, domain.CommandLock, at)
		settled := make([]int, parallelism)
		for i, err := range race(parallelism, func(i int) error {
			got, err := s.SettleUnknown(t.Context(), f.vehicles[0], true, at.Add(time.Minute), at.Add(time.Hour))
			settled[i] = len(got)
			return err
		}) {
			if err != nil {
				t.Errorf("SettleUnknown %d: %v", i, err)
			}
		}
		total := 0
		for _, n := range settled {
			total += n
		}
		if total != 1 {
			t.Errorf("the command was settled %d times, want once", total)
		}
	})
}
