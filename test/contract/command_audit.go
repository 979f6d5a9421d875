package contract

import (
	"testing"
	"time"

	"github.com/betterkey/backend/domain"
)

// commandArchive checks ArchiveHistory: an erased account's commands leave the store as
// pseudonymised audit entries, exactly once, and nobody else's are touched.
func commandArchive(t *testing.T, newStores NewCommandStores) {
	t.Run("ArchiveHistory/MovesTheHistoryOncePseudonymised", func(t *testing.T) {
		t.Parallel()
		s, conns, users := newStores(t)
		f := seedFleetIn(t, s, conns, users, 2)
		other := seedFleetIn(t, s, conns, users, 1)
		at := now()
		var cmds []domain.Command
		for i := range 3 {
			c := f.admit(t, f.command(i%2, domain.CommandUnlock, at.Add(time.Duration(i)*time.Minute)))
			c, err := s.Update(t.Context(), c.ID, func(x *domain.Command) error { return x.Expire(c.CreatedAt) })
			if err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, c)
		}
		keep := other.admit(t, other.command(0, domain.CommandLock, at))

		archivedAt := at.Add(time.Hour)
		entries, err := s.ArchiveHistory(t.Context(), f.user, archivedAt)
		if err != nil || len(entries) != len(cmds) {
			t.Fatalf("ArchiveHistory = %d entries, %v; want %d", len(entries), err, len(cmds))
		}
		vehicleOf := map[string]string{}
		for i, e := range entries {
			c := cmds[i]
			switch {
			case e.AccountPseudonym == "" || e.AccountPseudonym != entries[0].AccountPseudonym:
				t.Errorf("entry %d: account pseudonym %q, want one shared non-empty pseudonym", i, e.AccountPseudonym)
			case e.AccountPseudonym == string(f.user) || e.VehiclePseudonym == string(c.VehicleID) || e.ID == string(c.ID):
				t.Errorf("entry %d names the account, the vehicle or the command", i)
			case e.Action != c.Action || e.Status != c.Status || !e.CreatedAt.Equal(c.CreatedAt) || !e.ArchivedAt.Equal(archivedAt.UTC().Truncate(time.Microsecond)):
				t.Errorf("entry %d = %+v, want what command %+v did", i, e, c)
			}
			if prev, ok := vehicleOf[string(c.VehicleID)]; ok && prev != e.VehiclePseudonym {
				t.Errorf("entry %d: one vehicle under two pseudonyms", i)
			}
			vehicleOf[string(c.VehicleID)] = e.VehiclePseudonym
		}
		if len(vehicleOf) != 2 || vehicleOf[string(f.vehicles[0])] == vehicleOf[string(f.vehicles[1])] {
			t.Errorf("vehicle pseudonyms %v, want one per vehicle", vehicleOf)
		}
		if list, err := s.UserHistory(t.Context(), f.user, "", 10); err != nil || len(list) != 0 {
			t.Errorf("UserHistory after archiving = %d commands, %v; want none", len(list), err)
		}
		if again, err := s.ArchiveHistory(t.Context(), f.user, archivedAt); err != nil || len(again) != 0 {
			t.Errorf("ArchiveHistory again = %d entries, %v; want none", len(again), err)
		}
		wantCommand(t, s, keep)
	})
}
