package contract

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// UserStore checks a ports.UserStore against its doc comments. newStore is called once per
// subtest; the stores it returns may share one database.
func UserStore(t *testing.T, newStore func(t *testing.T) ports.UserStore) {
	t.Run("CreateThenGet/RoundTrips", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		want := newUser(now())
		if err := s.Create(t.Context(), want); err != nil {
			t.Fatalf("Create: %v", err)
		}
		got, err := s.Get(t.Context(), want.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("Get (-got +want):\n%s", diff)
		}
		got, err = s.GetByApple(t.Context(), want.AppleIssuer, want.AppleSubject)
		if err != nil {
			t.Fatalf("GetByApple: %v", err)
		}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("GetByApple (-got +want):\n%s", diff)
		}
	})

	t.Run("CreateWithoutEmail/RoundTrips", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		want := newUser(now())
		want.Email, want.EmailVerified, want.IsPrivateEmail = "", false, false
		if err := s.Create(t.Context(), want); err != nil {
			t.Fatalf("Create: %v", err)
		}
		got, err := s.Get(t.Context(), want.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("Get (-got +want):\n%s", diff)
		}
	})

	t.Run("Get/Missing/ReturnsErrNotFound", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		for _, id := range []domain.UserID{domain.NewUserID(), "", "not-a-uuid"} {
			_, err := s.Get(t.Context(), id)
			wantErr(t, err, domain.ErrNotFound)
		}
	})

	t.Run("GetByApple/Missing/ReturnsErrNotFound", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		u := newUser(now())
		if err := s.Create(t.Context(), u); err != nil {
			t.Fatalf("Create: %v", err)
		}
		_, err := s.GetByApple(t.Context(), u.AppleIssuer, u.AppleSubject+"x")
		wantErr(t, err, domain.ErrNotFound)
		_, err = s.GetByApple(t.Context(), "https://other.example", u.AppleSubject)
		wantErr(t, err, domain.ErrNotFound)
	})

	t.Run("Create/DuplicateID/ReturnsErrConflict", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		first := newUser(now())
		if err := s.Create(t.Context(), first); err != nil {
			t.Fatalf("Create: %v", err)
		}
		second := newUser(now())
		second.ID = first.ID
		wantErr(t, s.Create(t.Context(), second), domain.ErrConflict)
		_, err := s.GetByApple(t.Context(), second.AppleIssuer, second.AppleSubject)
		wantErr(t, err, domain.ErrNotFound)
	})

	t.Run("Create/DuplicateAppleIdentity/ReturnsErrConflict", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		first := newUser(now())
		if err := s.Create(t.Context(), first); err != nil {
			t.Fatalf("Create: %v", err)
		}
		second := newUser(now())
		second.AppleIssuer, second.AppleSubject = first.AppleIssuer, first.AppleSubject
		wantErr(t, s.Create(t.Context(), second), domain.ErrConflict)
		_, err := s.Get(t.Context(), second.ID)
		wantErr(t, err, domain.ErrNotFound)
		got, err := s.GetByApple(t.Context(), first.AppleIssuer, first.AppleSubject)
		if err != nil {
			t.Fatalf("GetByApple: %v", err)
		}
		if diff := cmp.Diff(got, first); diff != "" {
			t.Errorf("GetByApple after conflict (-got +want):\n%s", diff)
		}
	})

	t.Run("Create/SameSubjectOtherIssuer/Succeeds", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		first := newUser(now())
		second := newUser(now())
		second.AppleIssuer, second.AppleSubject = "https://other.example", first.AppleSubject
		for _, u := range []domain.User{first, second} {
			if err := s.Create(t.Context(), u); err != nil {
				t.Fatalf("Create %s: %v", u.AppleIssuer, err)
			}
		}
	})

	t.Run("Create/ConcurrentSameAppleIdentity/OneWins", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		proto := newUser(now())
		errs := race(parallelism, func(int) error {
			u := proto
			u.ID = domain.NewUserID()
			return s.Create(t.Context(), u)
		})
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, domain.ErrConflict):
				t.Errorf("Create: %v, want nil or ErrConflict", err)
			}
		}
		if won != 1 {
			t.Errorf("%d of %d concurrent Creates succeeded, want 1", won, parallelism)
		}
	})

	userSave(t, newStore)
	userDelete(t, newStore)
}

func userSave(t *testing.T, newStore func(t *testing.T) ports.UserStore) {
	t.Run("Save/OverwritesProfileKeepsIdentity", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		created := newUser(now())
		if err := s.Create(t.Context(), created); err != nil {
			t.Fatalf("Create: %v", err)
		}
		later := created.CreatedAt.Add(time.Hour)
		changed := created
		changed.Email, changed.EmailVerified, changed.IsPrivateEmail = "new@example.com", false, false
		changed.UpdatedAt = later
		changed.AppleSubject, changed.CreatedAt = "someone-else", later // not profile fields: ignored
		if err := s.Save(t.Context(), changed); err != nil {
			t.Fatalf("Save: %v", err)
		}
		want := created
		want.Email, want.EmailVerified, want.IsPrivateEmail, want.UpdatedAt = "new@example.com", false, false, later
		got, err := s.Get(t.Context(), created.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("Get after Save (-got +want):\n%s", diff)
		}
	})

	t.Run("MarkDeleting/KeepsTheFirstStartThroughSaves", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		u, other := newUser(now()), newUser(now())
		for _, x := range []domain.User{u, other} {
			if err := s.Create(t.Context(), x); err != nil {
				t.Fatalf("Create: %v", err)
			}
		}
		first := now().Add(time.Minute)
		for _, at := range []time.Time{first, first.Add(time.Hour)} { // a retried erasure
			if err := s.MarkDeleting(t.Context(), u.ID, at); err != nil {
				t.Fatalf("MarkDeleting: %v", err)
			}
		}
		changed := u
		changed.Email = "new@example.com"
		if err := s.Save(t.Context(), changed); err != nil {
			t.Fatalf("Save: %v", err)
		}
		got, err := s.Get(t.Context(), u.ID)
		if err != nil || got.DeletionRequestedAt == nil || !got.DeletionRequestedAt.Equal(first) {
			t.Fatalf("Get after MarkDeleting and Save = %v, %v; want the first start %v kept", got.DeletionRequestedAt, err, first)
		}
		byApple, err := s.GetByApple(t.Context(), u.AppleIssuer, u.AppleSubject)
		if err != nil || byApple.DeletionRequestedAt == nil {
			t.Fatalf("GetByApple = %v, %v; want the mark", byApple.DeletionRequestedAt, err)
		}
		if o, _ := s.Get(t.Context(), other.ID); o.DeletionRequestedAt != nil {
			t.Fatal("another user was marked")
		}
		wantErr(t, s.MarkDeleting(t.Context(), domain.NewUserID(), first), domain.ErrNotFound)
	})

	t.Run("Save/Missing/ReturnsErrNotFound", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		u := newUser(now())
		wantErr(t, s.Save(t.Context(), u), domain.ErrNotFound)
		_, err := s.Get(t.Context(), u.ID)
		wantErr(t, err, domain.ErrNotFound)
	})
}

func userDelete(t *testing.T, newStore func(t *testing.T) ports.UserStore) {
	t.Run("Delete/RemovesOnlyThatUser", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		gone, kept := newUser(now()), newUser(now())
		for _, u := range []domain.User{gone, kept} {
			if err := s.Create(t.Context(), u); err != nil {
				t.Fatalf("Create: %v", err)
			}
		}
		if err := s.Delete(t.Context(), gone.ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		_, err := s.Get(t.Context(), gone.ID)
		wantErr(t, err, domain.ErrNotFound)
		_, err = s.GetByApple(t.Context(), gone.AppleIssuer, gone.AppleSubject)
		wantErr(t, err, domain.ErrNotFound)
		if got, err := s.Get(t.Context(), kept.ID); err != nil || got.ID != kept.ID {
			t.Fatalf("Get of the other user = %v, %v", got.ID, err)
		}
		// The Apple identity is free again: the same Apple account may sign up afresh.
		again := newUser(now())
		again.AppleIssuer, again.AppleSubject = gone.AppleIssuer, gone.AppleSubject
		if err := s.Create(t.Context(), again); err != nil {
			t.Fatalf("Create after Delete: %v", err)
		}
	})

	t.Run("Delete/Missing/ReturnsErrNotFound", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		for _, id := range []domain.UserID{domain.NewUserID(), "", "not-a-uuid"} {
			wantErr(t, s.Delete(t.Context(), id), domain.ErrNotFound)
		}
		u := newUser(now())
		if err := s.Create(t.Context(), u); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if err := s.Delete(t.Context(), u.ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		wantErr(t, s.Delete(t.Context(), u.ID), domain.ErrNotFound)
	})
}
