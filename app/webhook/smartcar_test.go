package webhook_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/app/webhook"
	"github.com/betterkey/backend/domain"
)

func TestIngestRejectsBeforeAnythingIsStored(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	l := h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	body := h.body(t, stateEvent("sc-user-1", "sc-car-1", false, start))
	good := smartcarsim.Sign(currentSecret, body)
	changed := append([]byte{}, body...)
	changed[len(changed)/2] ^= 0x01
	for name, tc := range map[string]struct {
		body []byte
		sig  string
		want *domain.Error
	}{
		"missing signature":             {body, "", domain.ErrWebhookSignature},
		"wrong secret":                  {body, smartcarsim.Sign("not-the-token", body), domain.ErrWebhookSignature},
		"body changed by one byte":      {changed, good, domain.ErrWebhookSignature},
		"signature of a different body": {body, smartcarsim.Sign(currentSecret, []byte(`{"eventId":"x"}`)), domain.ErrWebhookSignature},
		"uppercase hex":                 {body, strings.ToUpper(good), domain.ErrWebhookSignature},
		"truncated hex":                 {body, good[:40], domain.ErrWebhookSignature},
		"empty body":                    {nil, smartcarsim.Sign(currentSecret, nil), webhook.ErrEmptyDelivery},
	} {
		t.Run(name, func(t *testing.T) {
			rec, err := h.svc.IngestSmartcar(t.Context(), tc.body, tc.sig)
			if !errors.Is(err, tc.want) || rec != (webhook.Receipt{}) {
				t.Fatalf("IngestSmartcar = %+v, %v; want %v", rec, err, tc.want)
			}
			if n := h.pending(t); n != 0 {
				t.Fatalf("%d events stored", n)
			}
		})
	}
	if st := h.status(t, l, 0); st != nil {
		t.Fatalf("a rejected delivery changed the status: %+v", st)
	}
}

func TestReplayedEventIsProcessedOnce(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	l := h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	ev := stateEvent("sc-user-1", "sc-car-1", false, start)
	var got []webhook.Outcome
	for range 3 { // Smartcar's retries: same eventId, a new delivery id and signature each time
		rec, err := h.deliver(t, currentSecret, h.body(t, ev))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rec.Outcome)
	}
	if diff := cmp.Diff(got, []webhook.Outcome{webhook.OutcomeStored, webhook.OutcomeDuplicate, webhook.OutcomeDuplicate}); diff != "" {
		t.Fatalf("receipts (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(h.process(t), []webhook.Outcome{webhook.OutcomeApplied}); diff != "" {
		t.Fatalf("processed (-got +want):\n%s", diff)
	}
	if rec, err := h.deliver(t, currentSecret, h.body(t, ev)); err != nil || rec.Outcome != webhook.OutcomeDuplicate {
		t.Fatalf("a redelivery after processing = %+v, %v; want a duplicate", rec, err)
	}
	if out := h.process(t); len(out) != 0 {
		t.Fatalf("processed again: %v", out)
	}
	st := h.status(t, l, 0)
	if st == nil || *st.Locked || st.Source != domain.StatusWebhook || !st.ObservedAt.Equal(start) {
		t.Fatalf("status %+v, want unlocked from the webhook", st)
	}
	e, err := h.inbox.Get(t.Context(), domain.SourceSmartcar, ev.ID)
	if err != nil || e.Status != domain.InboxProcessed || e.Attempts != 1 || e.Outcome != string(webhook.OutcomeApplied) {
		t.Fatalf("inbox event %+v, %v", e, err)
	}
}

func TestMalformedBodyWithValidSignatureIsPoison(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	for _, body := range []string{`{"eventId":"e1","eventType":"VEHICLE_STATE",`, `["not","an","object"]`, "\xff\xfe"} {
		rec, err := h.deliver(t, currentSecret, []byte(body))
		if err != nil || rec.Outcome != webhook.OutcomePoison {
			t.Fatalf("IngestSmartcar(%q) = %+v, %v; want poison", body, rec, err)
		}
		e, err := h.inbox.Get(t.Context(), domain.SourceSmartcar, domain.ContentEventID([]byte(body)))
		if err != nil || e.Status != domain.InboxPoison || string(e.Payload) != body {
			t.Fatalf("stored %+v, %v; want the body as poison", e, err)
		}
	}
	if out := h.process(t); len(out) != 0 {
		t.Fatalf("poison was processed: %v", out)
	}
}

func TestRotatedSecretIsAccepted(t *testing.T) {
	h := newHarness(t, webhook.Config{}, currentSecret, previousSecret)
	h.link(t, "sub-1", "sc-user-1", "sc-car-1")
	for i, key := range []string{previousSecret, currentSecret} {
		ev := stateEvent("sc-user-1", "sc-car-1", i == 0, start.Add(time.Duration(i)*time.Second))
		if rec, err := h.deliver(t, key, h.body(t, ev)); err != nil || rec.Outcome != webhook.OutcomeStored {
			t.Fatalf("signed with secret %d: %+v, %v", i, rec, err)
		}
	}
	if _, err := h.deliver(t, "retired", h.body(t, stateEvent("sc-user-1", "sc-car-1", true, start))); !errors.Is(err, domain.ErrWebhookSignature) {
		t.Fatalf("a retired secret: %v", err)
	}
	c := smartcarsim.NewChallenge()
	rec, err := h.deliver(t, previousSecret, h.body(t, smartcarsim.NewVerifyEvent(c)))
	if err != nil || rec.Outcome != webhook.OutcomeVerify || rec.Challenge != smartcarsim.HashChallenge(currentSecret, c) {
		t.Fatalf("verify = %+v, %v; want the challenge signed with the current secret", rec, err)
	}
	if n := h.pending(t); n != 2 {
		t.Fatalf("%d events pending, want the two state events (verify is not stored)", n)
	}
}

func TestLockStatusNewestObservationWins(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	a := h.link(t, "sub-a", "sc-user-a", "sc-shared")
	b := h.link(t, "sub-b", "sc-user-b", "sc-shared") // one car, linked by two owners
	steps := []struct {
		locked bool
		at     time.Time
		want   webhook.Outcome
	}{
		{false, start, webhook.OutcomeApplied},
		{true, start.Add(-time.Hour), webhook.OutcomeStale}, // older, arriving later
		{true, start.Add(time.Second), webhook.OutcomeApplied},
		{false, start.Add(time.Hour), webhook.OutcomeFuture}, // an hour ahead of our clock
	}
	for i, step := range steps {
		if _, err := h.deliver(t, currentSecret, h.body(t, stateEvent("sc-user-a", "sc-shared", step.locked, step.at))); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(h.process(t), []webhook.Outcome{step.want}); diff != "" {
			t.Fatalf("step %d (-got +want):\n%s", i, diff)
		}
	}
	for _, l := range []linked{a, b} {
		if st := h.status(t, l, 0); st == nil || !*st.Locked || !st.ObservedAt.Equal(start.Add(time.Second)) {
			t.Fatalf("status %+v, want locked as observed at +1s", st)
		}
	}
	if _, err := h.deliver(t, currentSecret, h.body(t, stateEvent("sc-user-x", "sc-nobody", true, start))); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(h.process(t), []webhook.Outcome{webhook.OutcomeUnknownVehicle}); diff != "" {
		t.Fatalf("unknown vehicle (-got +want):\n%s", diff)
	}
}

func TestErrorEventsMarkConnections(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	a := h.link(t, "sub-a", "sc-user-a", "sc-car")
	b := h.link(t, "sub-b", "sc-user-b", "sc-car")
	errorEvent := func(user string, errs ...smartcarsim.VehicleError) smartcarsim.Event {
		return smartcarsim.NewVehicleErrorEvent(smartcarsim.ErrorEvent{UserID: user, Vehicle: smartcarsim.VehicleRef{ID: "sc-car"}, Errors: errs})
	}
	steps := []struct {
		name  string
		ev    smartcarsim.Event
		want  webhook.Outcome
		wantA domain.ConnectionStatus
	}{
		{"a sleepy car says nothing about credentials", errorEvent("sc-user-a", smartcarsim.VehicleError{Type: "VEHICLE_STATE", Code: "ASLEEP"}),
			webhook.OutcomeIgnored, domain.ConnectionActive},
		{"resolved errors change nothing", errorEvent("sc-user-a", smartcarsim.VehicleError{Type: "PERMISSION", Resolved: true}),
			webhook.OutcomeIgnored, domain.ConnectionActive},
		{"re-auth", errorEvent("sc-user-a", smartcarsim.VehicleError{Type: "CONNECTED_SERVICES_ACCOUNT", Code: "AUTHENTICATION_FAILED",
			Resolution: "REAUTHENTICATE"}), webhook.OutcomeMarked, domain.ConnectionNeedsReauth},
		{"permission revoked", errorEvent("sc-user-a", smartcarsim.VehicleError{Type: "PERMISSION", Resolution: "REAUTHENTICATE"}),
			webhook.OutcomeMarked, domain.ConnectionRevoked},
		{"revoked is never softened", errorEvent("sc-user-a", smartcarsim.VehicleError{Type: "AUTHENTICATION"}),
			webhook.OutcomeIgnored, domain.ConnectionRevoked},
		{"another Smartcar user's car", errorEvent("sc-user-z", smartcarsim.VehicleError{Type: "PERMISSION"}),
			webhook.OutcomeUnknownVehicle, domain.ConnectionRevoked},
	}
	for _, step := range steps {
		if _, err := h.deliver(t, currentSecret, h.body(t, step.ev)); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(h.process(t), []webhook.Outcome{step.want}); diff != "" {
			t.Fatalf("%s (-got +want):\n%s", step.name, diff)
		}
		for l, want := range map[*linked]domain.ConnectionStatus{&a: step.wantA, &b: domain.ConnectionActive} {
			if c, err := h.conns.Get(t.Context(), l.conn.ID); err != nil || c.Status != want {
				t.Fatalf("%s: connection of %s is %s (%v), want %s", step.name, l.conn.SmartcarUserID, c.Status, err, want)
			}
		}
	}
}

// TestUnsignedVerifyIsRefused: one integration reports that Smartcar's VERIFY comes unsigned.
// Answering an unsigned challenge would sign any bytes a stranger chooses, a body included, so a
// verify must carry a valid signature like every other delivery.
func TestUnsignedVerifyIsRefused(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	body := h.body(t, smartcarsim.NewVerifyEvent(`{"eventId":"forged","eventType":"VEHICLE_STATE"}`))
	rec, err := h.svc.IngestSmartcar(t.Context(), body, "")
	if !errors.Is(err, domain.ErrWebhookSignature) || rec.Challenge != "" {
		t.Fatalf("unsigned verify = %+v, %v; want refused without an answer", rec, err)
	}
}
