package contract

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/domain"
)

func commandDispatch(t *testing.T, newStores NewCommandStores) {
	t.Run("Dispatch/MovesToDispatchedOnce", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 1)
		at := now()
		c := f.admit(t, f.command(0, domain.CommandLock, at))
		when := at.Add(time.Second)
		got, err := f.s.Dispatch(t.Context(), c.ID, when, when.Add(commandLease))
		if err != nil {
			t.Fatalf("Dispatch: %v", err)
		}
		if err := c.Dispatch(when); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, c); diff != "" {
			t.Errorf("Dispatch (-got +want):\n%s", diff)
		}
		wantCommand(t, f.s, c)
		_, err = f.s.Dispatch(t.Context(), c.ID, when, when.Add(commandLease))
		wantErr(t, err, domain.ErrCommandStateConflict)
		// The lease was extended from the dispatch on.
		next := f.command(0, domain.CommandLock, when.Add(commandLease-time.Second))
		_, err = f.s.Admit(t.Context(), next, next.CreatedAt.Add(commandLease), noLimit, next.CreatedAt)
		wantRefusal(t, err, domain.ErrCommandInFlight, c.ID, time.Second)
	})
	t.Run("Dispatch/PastDeadlineOrLeaseLost/ChangesNothing", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 1)
		at := now()
		c := f.admit(t, f.command(0, domain.CommandLock, at))
		_, err := f.s.Dispatch(t.Context(), c.ID, c.Deadline, c.Deadline.Add(commandLease))
		wantErr(t, err, domain.ErrCommandExpired)
		// The lease (20 s) ends before the deadline (30 s).
		_, err = f.s.Dispatch(t.Context(), c.ID, at.Add(commandLease), at.Add(2*commandLease))
		wantErr(t, err, domain.ErrCommandStateConflict)
		wantCommand(t, f.s, c)
		if _, err := f.s.Dispatch(t.Context(), domain.NewCommandID(), at, at); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Dispatch of an unknown command = %v, want ErrNotFound", err)
		}
	})
	t.Run("Renew/ExtendsOnlyAHeldLease", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 1)
		at := now()
		c := f.admit(t, f.command(0, domain.CommandLock, at))
		if ok, err := f.s.Renew(t.Context(), c.ID, at.Add(time.Second), at.Add(time.Hour)); err != nil || !ok {
			t.Fatalf("Renew = %v, %v; want true", ok, err)
		}
		next := f.command(0, domain.CommandLock, at.Add(time.Minute))
		_, err := f.s.Admit(t.Context(), next, next.CreatedAt.Add(commandLease), noLimit, next.CreatedAt)
		wantRefusal(t, err, domain.ErrCommandInFlight, c.ID, time.Hour-time.Minute)
		if ok, err := f.s.Renew(t.Context(), c.ID, at.Add(time.Hour), at.Add(2*time.Hour)); err != nil || ok {
			t.Errorf("Renew of an expired lease = %v, %v; want false", ok, err)
		}
		if ok, err := f.s.Renew(t.Context(), domain.NewCommandID(), at, at.Add(time.Hour)); err != nil || ok {
			t.Errorf("Renew of an unknown command = %v, %v; want false", ok, err)
		}
	})
}

func commandUpdate(t *testing.T, newStores NewCommandStores) {
	t.Run("Update/FinishesAndReleasesTheGuard", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 1)
		at := now()
		c := f.admit(t, f.command(0, domain.CommandUnlock, at))
		if _, err := f.s.Dispatch(t.Context(), c.ID, at, at.Add(commandLease)); err != nil {
			t.Fatal(err)
		}
		got, err := f.s.Update(t.Context(), c.ID, func(x *domain.Command) error {
			x.VehicleID, x.Action, x.Deadline = domain.NewVehicleID(), domain.CommandLock, at // fixed fields
			return x.Fail(at.Add(time.Second), domain.ErrRateLimited.Code, "req-1", 90*time.Second)
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		_ = c.Dispatch(at)
		_ = c.Fail(at.Add(time.Second), domain.ErrRateLimited.Code, "req-1", 90*time.Second)
		if diff := cmp.Diff(got, c); diff != "" {
			t.Errorf("Update (-got +want):\n%s", diff)
		}
		wantCommand(t, f.s, c)
		f.admit(t, f.command(0, domain.CommandLock, at.Add(2*time.Second)))
		_, err = f.s.Update(t.Context(), c.ID, func(x *domain.Command) error { return nil })
		wantErr(t, err, domain.ErrCommandStateConflict)
	})
	t.Run("Update/RefusesBackwardsAndReturnsFnErrors", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 1)
		at := now()
		c := f.admit(t, f.command(0, domain.CommandLock, at))
		_, err := f.s.Update(t.Context(), c.ID, func(x *domain.Command) error {
			x.Status = domain.CommandSucceeded // skips dispatched
			return nil
		})
		wantErr(t, err, domain.ErrCommandStateConflict)
		boom := errors.New("boom")
		if _, err := f.s.Update(t.Context(), c.ID, func(x *domain.Command) error {
			x.ErrorCode = "X"
			return boom
		}); err != boom {
			t.Errorf("Update = %v, want fn's error itself", err)
		}
		wantCommand(t, f.s, c)
		if _, err := f.s.Update(t.Context(), domain.NewCommandID(), func(*domain.Command) error { return nil }); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Update of an unknown command = %v, want ErrNotFound", err)
		}
	})
	t.Run("Update/Concurrent/OneFinishes", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 1)
		at := now()
		c := f.admit(t, f.command(0, domain.CommandLock, at))
		if _, err := f.s.Dispatch(t.Context(), c.ID, at, at.Add(commandLease)); err != nil {
			t.Fatal(err)
		}
		won := 0
		for _, err := range race(parallelism, func(i int) error {
			_, err := f.s.Update(t.Context(), c.ID, func(x *domain.Command) error { return x.Succeed(at, "req") })
			return err
		}) {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, domain.ErrCommandStateConflict):
				t.Errorf("Update: %v", err)
			}
		}
		if won != 1 {
			t.Errorf("%d updates finished the command, want 1", won)
		}
	})
}

func commandHistory(t *testing.T, newStores NewCommandStores) {
	t.Run("History/NewestFirstWithKeysetPaging", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 2)
		at := now()
		var want []domain.Command
		for i := range 5 {
			c := f.command(0, domain.CommandLock, at.Add(time.Duration(i/2)*time.Minute)) // pairs share a time
			c = f.admit(t, c)
			c, err := f.s.Update(t.Context(), c.ID, func(x *domain.Command) error { return x.Expire(c.CreatedAt) })
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, c)
		}
		f.admit(t, f.command(1, domain.CommandLock, at)) // another vehicle
		slices.SortFunc(want, func(a, b domain.Command) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return -compareIDs(a.ID, b.ID)
		})
		var got []domain.Command
		var before domain.CommandID
		for {
			page, err := f.s.History(t.Context(), f.user, f.vehicles[0], before, 2)
			if err != nil {
				t.Fatalf("History: %v", err)
			}
			got = append(got, page...)
			if len(page) < 2 {
				break
			}
			before = page[len(page)-1].ID
		}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("History pages (-got +want):\n%s", diff)
		}
		other := seedFleet(t, newStores, 1)
		if list, err := f.s.History(t.Context(), other.user, f.vehicles[0], "", 10); err != nil || len(list) != 0 {
			t.Errorf("another user's history of the vehicle = %v, %v; want none", list, err)
		}
		if _, err := f.s.History(t.Context(), f.user, f.vehicles[1], want[0].ID, 10); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("History with another vehicle's cursor = %v, want ErrNotFound", err)
		}
	})
	t.Run("UserHistory/EveryVehicleNewestFirst", func(t *testing.T) {
		t.Parallel()
		f := seedFleet(t, newStores, 2)
		at := now()
		var want []domain.Command
		for i := range 4 {
			c := f.command(i%2, domain.CommandLock, at.Add(time.Duration(i/2)*time.Minute)) // pairs share a time
			c = f.admit(t, c)
			c, err := f.s.Update(t.Context(), c.ID, func(x *domain.Command) error { return x.Expire(c.CreatedAt) })
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, c)
		}
		other := seedFleet(t, newStores, 1)
		foreign := other.admit(t, other.command(0, domain.CommandUnlock, at))
		slices.SortFunc(want, func(a, b domain.Command) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return -compareIDs(a.ID, b.ID)
		})
		var got []domain.Command
		var before domain.CommandID
		for {
			page, err := f.s.UserHistory(t.Context(), f.user, before, 3)
			if err != nil {
				t.Fatalf("UserHistory: %v", err)
			}
			got = append(got, page...)
			if len(page) < 3 {
				break
			}
			before = page[len(page)-1].ID
		}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("UserHistory pages (-got +want):\n%s", diff)
		}
		if _, err := f.s.UserHistory(t.Context(), f.user, foreign.ID, 10); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("UserHistory with another user's cursor = %v, want ErrNotFound", err)
		}
	})
}

func compareIDs(a, b domain.CommandID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func commandClaim(t *testing.T, newStores NewCommandStores) {
	t.Run("ClaimAccepted/DispatchesOldAcceptedCommandsOnce", func(t *testing.T) {
		f := seedFleet(t, newStores, 4)
		at := now()
		old := f.admit(t, f.command(0, domain.CommandLock, at))
		older := f.admit(t, f.command(1, domain.CommandUnlock, at.Add(-time.Second)))
		young := f.admit(t, f.command(2, domain.CommandLock, at.Add(5*time.Second)))
		gone := f.admit(t, f.command(3, domain.CommandLock, at.Add(-25*time.Second))) // lease ends at −5 s
		when := at.Add(3 * time.Second)
		claimed := make([][]domain.Command, parallelism)
		for i, err := range race(parallelism, func(i int) error {
			var err error
			claimed[i], err = f.s.ClaimAccepted(t.Context(), at.Add(time.Second), when, when.Add(commandLease), 10)
			return err
		}) {
			if err != nil {
				t.Fatalf("ClaimAccepted %d: %v", i, err)
			}
		}
		var mine []domain.CommandID
		for _, list := range claimed {
			for _, c := range list {
				if slices.Contains(f.vehicles, c.VehicleID) {
					mine = append(mine, c.ID)
				}
			}
		}
		slices.Sort(mine)
		want := []domain.CommandID{older.ID, old.ID}
		slices.Sort(want)
		if !slices.Equal(mine, want) {
			t.Errorf("claimed %v, want each of %v once", mine, want)
		}
		for _, c := range []domain.Command{older, old} {
			_ = c.Dispatch(when)
			wantCommand(t, f.s, c)
		}
		wantCommand(t, f.s, young)
		wantCommand(t, f.s, gone)
	})
}

func commandSweep(t *testing.T, newStores NewCommandStores) {
	t.Run("Sweep/EndsWhatLostItsLeaseOnce", func(t *testing.T) {
		f := seedFleet(t, newStores, 4)
		at := now().Add(time.Hour) // after every other subtest's leases and deadlines
		sent := f.admit(t, f.command(0, domain.CommandUnlock, at))
		sent, err := f.s.Dispatch(t.Context(), sent.ID, at, at.Add(commandLease))
		if err != nil {
			t.Fatal(err)
		}
		stale := f.admit(t, f.command(1, domain.CommandLock, at))
		alive := f.admit(t, f.command(2, domain.CommandLock, at.Add(time.Minute)))
		done := f.admit(t, f.command(3, domain.CommandLock, at))
		done, err = f.s.Update(t.Context(), done.ID, func(c *domain.Command) error { return c.Expire(at) })
		if err != nil {
			t.Fatal(err)
		}
		when := at.Add(commandTTL)
		swept := make([][]domain.Command, parallelism)
		for i, err := range race(parallelism, func(i int) error {
			var err error
			swept[i], err = f.s.Sweep(t.Context(), when, 100)
			return err
		}) {
			if err != nil {
				t.Fatalf("Sweep %d: %v", i, err)
			}
		}
		var mine []domain.CommandID
		for _, list := range swept {
			for _, c := range list {
				if slices.Contains(f.vehicles, c.VehicleID) {
					mine = append(mine, c.ID)
				}
			}
		}
		slices.Sort(mine)
		want := []domain.CommandID{sent.ID, stale.ID}
		slices.Sort(want)
		if !slices.Equal(mine, want) {
			t.Errorf("swept %v, want each of %v once", mine, want)
		}
		for _, c := range []domain.Command{sent, stale} {
			_ = c.Abandon(when)
			wantCommand(t, f.s, c)
		}
		wantCommand(t, f.s, alive)
		wantCommand(t, f.s, done)
		// The swept vehicles are free again.
		f.admit(t, f.command(0, domain.CommandLock, when))
		f.admit(t, f.command(1, domain.CommandLock, when))
	})
}
