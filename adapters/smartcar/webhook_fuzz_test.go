package smartcar_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/domain"
)

// FuzzDecodeWebhookEvent feeds the envelope decoder the reference payloads, every shape-drift
// variant the simulator produces and their mutations. Whatever the bytes, Decode must not panic,
// must be deterministic, and what it returns must respect the bounds the use case relies on: ids
// that are safe keys, a known type, a dated lock reading, a bounded problem list.
func FuzzDecodeWebhookEvent(f *testing.F) {
	for _, s := range []string{referenceVerify, referenceState, referenceError,
		`{"version":"2.0","webhookId":"w","eventName":"verify","payload":{"challenge":"c"}}`,
		`{"version":"2.0","eventName":"schedule","mode":"test","payload":{"vehicles":[{"vehicleId":"v"}]}}`,
		`{"pizza":"pasta"}`, `{}`, `[]`, `null`, ``} {
		f.Add([]byte(s))
	}
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	car := smartcarsim.VehicleRef{ID: "v-1", Make: "FORD", Model: "Mustang Mach-E", Year: 2022}
	for _, d := range []smartcarsim.Drift{{}, {TopLevelTriggers: true, StringTriggerSignal: true}, {RetrievedAt: true, SignalStatus: true},
		{OmitVehicleID: true, DeliveredAtISO: true, Version: "3.0"}, {ErrorSignalsAsStrings: true}} {
		lock := smartcarsim.LockSignal(true, at, at)
		for _, e := range []smartcarsim.Event{
			smartcarsim.NewVehicleStateEvent(smartcarsim.StateEvent{UserID: "u", Vehicle: car, Signals: []smartcarsim.Signal{lock}, Triggers: []smartcarsim.Signal{lock}, Drift: d}),
			smartcarsim.NewVehicleErrorEvent(smartcarsim.ErrorEvent{UserID: "u", Vehicle: car, Drift: d, Errors: []smartcarsim.VehicleError{
				{Type: "PERMISSION", Resolution: "REAUTHENTICATE", Signals: []smartcarsim.Signal{lock}}}}),
			smartcarsim.NewVerifyEvent("challenge"),
		} {
			b, err := e.Encode(smartcarsim.DeliveryMeta{WebhookID: "w", DeliveryID: "d", DeliveredAt: at})
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	w := newWebhooks(f, "amt")
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := w.Decode(body)
		again, err2 := w.Decode(body)
		if (err == nil) != (err2 == nil) || !cmp.Equal(ev, again) {
			t.Fatalf("Decode is not deterministic")
		}
		if err != nil {
			if domain.KindOf(err) != domain.KindInvalid {
				t.Fatalf("Decode error of kind %v, want KindInvalid", domain.KindOf(err))
			}
			return
		}
		switch ev.Type {
		case domain.VehicleEventVerify, domain.VehicleEventState, domain.VehicleEventError, domain.VehicleEventOther:
		default:
			t.Fatalf("unknown type %q", ev.Type)
		}
		for _, id := range []string{ev.ID, ev.VehicleID, ev.UserID} {
			if len(id) > 128 {
				t.Fatalf("an id of %d bytes", len(id))
			}
			for _, c := range []byte(id) {
				if c <= ' ' || c >= 0x7f || c == '/' || c == '"' {
					t.Fatalf("an id with byte %#x", c)
				}
			}
		}
		if ev.Lock != nil && (ev.Lock.ObservedAt.IsZero() || ev.Type != domain.VehicleEventState) {
			t.Fatalf("lock reading %+v on a %s event", ev.Lock, ev.Type)
		}
		if len(ev.Problems) > 32 || len(ev.Problems) > 0 && ev.Type != domain.VehicleEventError {
			t.Fatalf("%d problems on a %s event", len(ev.Problems), ev.Type)
		}
		if ev.Challenge != "" && ev.Type != domain.VehicleEventVerify {
			t.Fatalf("a challenge on a %s event", ev.Type)
		}
	})
}
