package webhook_test

import (
	"errors"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/app/account"
	"github.com/betterkey/backend/app/webhook"
	"github.com/betterkey/backend/domain"
)

func TestAppleNotificationRejectedStoresNothing(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	l := h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	for _, payload := range []string{"", "forged", "jws-unknown"} {
		rec, err := h.svc.ReceiveApple(t.Context(), payload)
		if !errors.Is(err, domain.ErrInvalidNotification) || rec != (webhook.Receipt{}) {
			t.Fatalf("ReceiveApple(%q) = %+v, %v; want ErrInvalidNotification", payload, rec, err)
		}
	}
	if n := h.pending(t); n != 0 {
		t.Fatalf("%d events stored", n)
	}
	if s, err := h.sessions.Get(t.Context(), l.session.ID); err != nil || s.RevokedAt != nil {
		t.Fatalf("session after rejected notifications: %+v, %v", s, err)
	}
}

func TestConsentRevokedRevokesSessionsOnce(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	l := h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	other := h.link(t, "sub-2", "sc-user-2", "sc-car-2")
	payload := h.apple.sign("jti-1", domain.AppleConsentRevoked, "sub-1")
	rec, err := h.svc.ReceiveApple(t.Context(), payload)
	if err != nil || rec.Outcome != webhook.OutcomeStored {
		t.Fatalf("ReceiveApple = %+v, %v", rec, err)
	}
	s, err := h.sessions.Get(t.Context(), l.session.ID)
	if err != nil || s.RevokedAt == nil || s.RevokeReason != domain.RevokeAppleConsent {
		t.Fatalf("session after consent-revoked: %+v, %v; want revoked at once", s, err)
	}
	if s, _ := h.sessions.Get(t.Context(), other.session.ID); s.RevokedAt != nil {
		t.Fatal("another user's session was revoked")
	}
	e, err := h.inbox.Get(t.Context(), domain.SourceApple, "jti-1")
	if err != nil || e.Status != domain.InboxProcessed || e.Outcome != string(webhook.OutcomeSessionsRevoked) || e.Attempts != 1 {
		t.Fatalf("inbox event %+v, %v", e, err)
	}
	// Apple delivers the same notification again, after the user signed in anew.
	fresh := domain.NewSession(l.user.ID, "install-2", domain.DevicePhone, "", domain.HashToken("fresh"), start, domain.DefaultSessionLifetimes())
	if err := h.sessions.Create(t.Context(), fresh); err != nil {
		t.Fatal(err)
	}
	if rec, err := h.svc.ReceiveApple(t.Context(), payload); err != nil || rec.Outcome != webhook.OutcomeDuplicate {
		t.Fatalf("the duplicate = %+v, %v", rec, err)
	}
	if s, _ := h.sessions.Get(t.Context(), fresh.ID); s.RevokedAt != nil {
		t.Fatal("a duplicate notification was processed again")
	}
	if out := h.process(t); len(out) != 0 {
		t.Fatalf("the worker found %v", out)
	}
}

func TestAccountDeletedRemovesUserData(t *testing.T) {
	for _, spelling := range []string{"account-delete", "account-deleted"} {
		t.Run(spelling, func(t *testing.T) {
			h := newHarness(t, webhook.Config{})
			l := h.link(t, "sub-1", "sc-user-1", "sc-car-1", "sc-car-2")
			other := h.link(t, "sub-2", "sc-user-2", "sc-car-3")
			// The adapter normalises the old spelling; the use case sees one type.
			rec, err := h.svc.ReceiveApple(t.Context(), h.apple.sign("jti-"+spelling, domain.AppleAccountDeleted, "sub-1"))
			if err != nil || rec.Outcome != webhook.OutcomeStored {
				t.Fatalf("ReceiveApple = %+v, %v", rec, err)
			}
			if _, err := h.users.Get(t.Context(), l.user.ID); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("user after account-deleted: %v", err)
			}
			if vs, _ := h.conns.Vehicles(t.Context(), l.user.ID); len(vs) != 0 {
				t.Fatalf("%d vehicles left", len(vs))
			}
			if _, err := h.conns.Get(t.Context(), l.conn.ID); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("connection (and its sealed tokens) after account-deleted: %v", err)
			}
			if s, _ := h.sessions.Get(t.Context(), l.session.ID); s.RevokedAt == nil || s.RevokeReason != domain.RevokeAccount {
				t.Fatalf("session after account-deleted: %+v", s)
			}
			if h.unlink.calls != 2 {
				t.Fatalf("%d disconnects at Smartcar, want 2", h.unlink.calls)
			}
			if _, err := h.users.Get(t.Context(), other.user.ID); err != nil {
				t.Fatalf("the other user: %v", err)
			}
			e, _ := h.inbox.Get(t.Context(), domain.SourceApple, "jti-"+spelling)
			if e.Outcome != string(webhook.OutcomeAccountDeleted) {
				t.Fatalf("outcome %q", e.Outcome)
			}
		})
	}
}

func TestUnknownSubjectIsAcknowledged(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	for i, typ := range []domain.AppleEventType{domain.AppleConsentRevoked, domain.AppleAccountDeleted, domain.AppleEmailDisabled} {
		jti := "jti-unknown-" + string(rune('a'+i))
		if rec, err := h.svc.ReceiveApple(t.Context(), h.apple.sign(jti, typ, "nobody")); err != nil || rec.Outcome != webhook.OutcomeStored {
			t.Fatalf("%s: %+v, %v", typ, rec, err)
		}
		want := webhook.OutcomeUnknownSubject
		if typ == domain.AppleEmailDisabled {
			want = webhook.OutcomeIgnored
		}
		if e, _ := h.inbox.Get(t.Context(), domain.SourceApple, jti); e.Outcome != string(want) {
			t.Fatalf("%s: outcome %q, want %q", typ, e.Outcome, want)
		}
	}
}

func TestAccountDeletionResumesAndFinallyForgoesSmartcar(t *testing.T) {
	h := newHarness(t, webhook.Config{ForceLocalDeleteAfter: 3})
	l := h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	h.unlink.err = &domain.UpstreamError{Err: domain.ErrUpstreamUnavailable, Op: "disconnect", Transient: true}
	if rec, err := h.svc.ReceiveApple(t.Context(), h.apple.sign("jti-del", domain.AppleAccountDeleted, "sub-1")); err != nil || rec.Outcome != webhook.OutcomeStored {
		t.Fatalf("ReceiveApple = %+v, %v", rec, err)
	}
	// The first attempt (in the request) failed at Smartcar: access is gone, data still there.
	if s, _ := h.sessions.Get(t.Context(), l.session.ID); s.RevokedAt == nil {
		t.Fatal("sessions survive a failed deletion attempt")
	}
	if _, err := h.users.Get(t.Context(), l.user.ID); err != nil {
		t.Fatalf("user: %v", err)
	}
	e, _ := h.inbox.Get(t.Context(), domain.SourceApple, "jti-del")
	if e.Status != domain.InboxPending || e.LastError != "UNAVAILABLE" {
		t.Fatalf("after the first attempt: %+v", e)
	}
	h.clock.Advance(e.AvailableAt.Sub(start))
	if out := h.process(t); len(out) != 1 || out[0] != webhook.OutcomeRetry {
		t.Fatalf("second attempt: %v", out)
	}
	e, _ = h.inbox.Get(t.Context(), domain.SourceApple, "jti-del")
	h.clock.Advance(e.AvailableAt.Sub(h.clock.Now()))
	if out := h.process(t); len(out) != 1 || out[0] != webhook.OutcomeAccountDeleted {
		t.Fatalf("third attempt: %v", out)
	}
	if _, err := h.users.Get(t.Context(), l.user.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("user after the forced deletion: %v", err)
	}
	if _, err := h.conns.Get(t.Context(), l.conn.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("connection after the forced deletion: %v", err)
	}
}

// TestConsentRevokedForgetsAppleGrants: once the user has revoked consent, the Apple refresh
// tokens the account held are dead at Apple and are deleted; another user's stay.
func TestConsentRevokedForgetsAppleGrants(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	grants := memory.NewAppleGrants(memory.NewSealedSecrets(), h.users)
	h.rebuild(func(d *webhook.Deps) {
		d.Accounts = account.New(account.Deps{Users: h.users, Sessions: h.sessions, Connections: h.conns, Vehicles: h.unlink,
			AppleGrants: grants}).WithClock(h.clock.Now)
	})
	l := h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	other := h.link(t, "sub-2", "sc-user-2", "sc-car-2")
	// The notification says consent was revoked a second before start. The phone's grant is
	// older; the watch's was obtained at start, after the user consented again, and is alive.
	put := func(u domain.UserID, client string, at time.Time) {
		sealed, _ := domain.ParseSealed("test:v1:rt")
		if err := grants.PutAppleGrant(t.Context(), domain.AppleGrant{UserID: u, ClientID: client, RefreshToken: sealed, CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	put(l.user.ID, "com.betterkey.app", start.Add(-time.Hour))
	put(l.user.ID, "com.betterkey.app.watchkitapp", start)
	put(other.user.ID, "com.betterkey.app", start.Add(-time.Hour))
	if rec, err := h.svc.ReceiveApple(t.Context(), h.apple.sign("jti-g", domain.AppleConsentRevoked, "sub-1")); err != nil || rec.Outcome != webhook.OutcomeStored {
		t.Fatalf("ReceiveApple = %+v, %v", rec, err)
	}
	if list, _ := grants.AppleGrants(t.Context(), l.user.ID); len(list) != 1 || list[0].ClientID != "com.betterkey.app.watchkitapp" {
		t.Errorf("grants after consent-revoked: %v, want only the one obtained after it", list)
	}
	if list, _ := grants.AppleGrants(t.Context(), other.user.ID); len(list) != 1 {
		t.Errorf("another user's grants: %v, want kept", list)
	}
}
