package smartcar_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/smartcar"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/domain"
)

func newWebhooks(t testing.TB, secrets ...string) *smartcar.Webhooks {
	t.Helper()
	var s []domain.Secret
	for _, x := range secrets {
		s = append(s, domain.NewSecret(x))
	}
	w, err := smartcar.NewWebhooks(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWebhookSignatureMatchesTheSDKTestVectors(t *testing.T) {
	w := newWebhooks(t, "amt")
	if err := w.Authenticate([]byte(`{"pizza":"pasta"}`), "4c05a8da471f05156ad717baa4017acd13a3a809850b9ca7d3301dcaaa854f70"); err != nil {
		t.Errorf("Authenticate of the SDK vector: %v", err)
	}
	if got := w.AnswerChallenge("challenge"); got != "9baf5a7464bd86740ad5a06e439dcf535a075022ed2c92d74efacf646d79328e" {
		t.Errorf("AnswerChallenge = %s", got)
	}
}

func TestWebhookSignatureRejections(t *testing.T) {
	const secret = "CANARY-MANAGEMENT-TOKEN"
	w := newWebhooks(t, secret)
	body := []byte(`{"eventId":"52f6e0bb-1369-45da-a61c-9e67d092d6db","eventType":"VEHICLE_STATE","data":{}}`)
	good := smartcarsim.Sign(secret, body)
	changed := append([]byte{}, body...)
	changed[len(changed)-2] = '['
	for name, tc := range map[string]struct {
		body []byte
		sig  string
	}{
		"missing signature":              {body, ""},
		"wrong secret":                   {body, smartcarsim.Sign("another-token", body)},
		"body changed by one byte":       {changed, good},
		"signature of a different body":  {body, smartcarsim.Sign(secret, []byte(`{"eventId":"other"}`))},
		"uppercase hex":                  {body, strings.ToUpper(good)},
		"truncated hex":                  {body, good[:63]},
		"extended hex":                   {body, good + "0"},
		"prefixed":                       {body, "sha256=" + good},
		"surrounding space":              {body, " " + good},
		"empty body, signature of other": {nil, good},
		"not hex at all":                 {body, strings.Repeat("z", 64)},
	} {
		t.Run(name, func(t *testing.T) {
			err := w.Authenticate(tc.body, tc.sig)
			if !errors.Is(err, domain.ErrWebhookSignature) || domain.KindOf(err) != domain.KindUnauthenticated {
				t.Fatalf("Authenticate = %v, want ErrWebhookSignature", err)
			}
			if tc.sig != "" && strings.Contains(err.Error(), tc.sig) || strings.Contains(err.Error(), secret) {
				t.Fatalf("the error quotes the signature or the secret: %v", err)
			}
		})
	}
	if err := w.Authenticate(body, good); err != nil {
		t.Fatalf("Authenticate of the good signature: %v", err)
	}
}

func TestWebhookSecretRotation(t *testing.T) {
	w := newWebhooks(t, "new-token", "old-token")
	body := []byte(`{"eventId":"e1"}`)
	for _, key := range []string{"new-token", "old-token"} {
		if err := w.Authenticate(body, smartcarsim.Sign(key, body)); err != nil {
			t.Errorf("signed with %s: %v", key, err)
		}
	}
	if err := w.Authenticate(body, smartcarsim.Sign("retired-token", body)); !errors.Is(err, domain.ErrWebhookSignature) {
		t.Errorf("signed with a retired token: %v", err)
	}
	if got, want := w.AnswerChallenge("c"), smartcarsim.HashChallenge("new-token", "c"); got != want {
		t.Errorf("challenge answered with %s, want the current token's %s", got, want)
	}
	for name, secrets := range map[string][]domain.Secret{
		"none":        nil,
		"three":       {domain.NewSecret("a"), domain.NewSecret("b"), domain.NewSecret("c")},
		"empty token": {domain.NewSecret("a"), domain.NewSecret("")},
	} {
		if _, err := smartcar.NewWebhooks(secrets); err == nil {
			t.Errorf("NewWebhooks with %s tokens succeeded", name)
		}
	}
}

// simBody renders a simulator event as one delivery would carry it.
func simBody(t testing.TB, e smartcarsim.Event) []byte {
	t.Helper()
	b, err := e.Encode(smartcarsim.DeliveryMeta{WebhookID: "wh", WebhookName: "BetterKey", DeliveryID: "d1", DeliveredAt: start})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeAcrossShapeDrift(t *testing.T) {
	w := newWebhooks(t, "amt")
	oem, fetched := start.Add(-time.Minute), start.Add(-10*time.Second)
	car := smartcarsim.VehicleRef{ID: "36ab27d0-fd9d-4455-823a-ce30af709ffc", Make: "TESLA", Model: "Model 3", Year: 2023}
	state := func(d smartcarsim.Drift, signals ...smartcarsim.Signal) smartcarsim.Event {
		return smartcarsim.NewVehicleStateEvent(smartcarsim.StateEvent{UserID: "sc-user-1", Vehicle: car, Signals: signals,
			Triggers: signals, Drift: d})
	}
	lock := smartcarsim.LockSignal(false, oem, fetched)
	wantLock := &domain.LockObservation{Locked: false, ObservedAt: oem, FetchedAt: fetched}
	for name, d := range map[string]smartcarsim.Drift{
		"documented":               {},
		"top-level triggers":       {TopLevelTriggers: true},
		"string trigger signal":    {TopLevelTriggers: true, StringTriggerSignal: true},
		"retrievedAt":              {RetrievedAt: true},
		"signal status":            {SignalStatus: true},
		"deliveredAt as ISO":       {DeliveredAtISO: true},
		"version 3.0":              {Version: "3.0"},
		"no envelope vehicleId":    {OmitVehicleID: true},
		"every deviation together": {TopLevelTriggers: true, StringTriggerSignal: true, RetrievedAt: true, SignalStatus: true, DeliveredAtISO: true, Version: "3.0", OmitVehicleID: true},
	} {
		t.Run(name, func(t *testing.T) {
			ev := state(d, smartcarsim.Signal{Code: "tractionbattery-stateofcharge", Name: "StateOfCharge", Group: "TractionBattery",
				Body: map[string]any{"unit": "percent", "value": 78}, OEMUpdatedAt: oem, FetchedAt: fetched}, lock)
			got, err := w.Decode(simBody(t, ev))
			if err != nil {
				t.Fatal(err)
			}
			want := domain.VehicleEvent{ID: ev.ID, Type: domain.VehicleEventState, Name: "VEHICLE_STATE", VehicleID: car.ID,
				UserID: "sc-user-1", Lock: wantLock}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("(-got +want):\n%s", diff)
			}
		})
	}
	t.Run("newest lock reading wins, failed and undated ones are skipped", func(t *testing.T) {
		failed := smartcarsim.Signal{Code: "closure-islocked", Name: "IsLocked", Group: "Closure", ErrorType: "COMPATIBILITY",
			ErrorCode: "VEHICLE_NOT_CAPABLE", OEMUpdatedAt: start, FetchedAt: start}
		older := smartcarsim.LockSignal(true, oem.Add(-time.Hour), fetched)
		got, err := w.Decode(simBody(t, state(smartcarsim.Drift{}, older, failed, lock)))
		if err != nil || got.Lock == nil || *got.Lock != *wantLock {
			t.Fatalf("Decode = %+v, %v; want the newest successful reading", got.Lock, err)
		}
		got, err = w.Decode(simBody(t, state(smartcarsim.Drift{}, failed)))
		if err != nil || got.Lock != nil {
			t.Fatalf("only a failed reading: Lock = %+v, %v; want none", got.Lock, err)
		}
	})
}

func TestDecodeReferencePayloads(t *testing.T) {
	w := newWebhooks(t, "amt")
	for name, tc := range map[string]struct {
		body string
		want domain.VehicleEvent
	}{
		"v4 verify": {referenceVerify, domain.VehicleEvent{ID: "52f6e0bb-1369-45da-a61c-9e67d092d6db", Type: domain.VehicleEventVerify,
			Name: "VERIFY", Challenge: "<random-string>"}},
		"legacy verify": {`{"version":"2.0","webhookId":"5a8e5e38","eventName":"verify","payload":{"challenge":"c-1"}}`,
			domain.VehicleEvent{Type: domain.VehicleEventVerify, Name: "verify", Challenge: "c-1"}},
		"legacy eventBased": {`{"version":"2.0","eventName":"eventBased","mode":"live","payload":{"eventId":"e-9","vehicleId":"v-9","eventType":"CHARGING_STARTED","eventTime":"2026-01-02T03:04:05Z"}}`,
			domain.VehicleEvent{ID: "e-9", Type: domain.VehicleEventOther, Name: "eventBased", VehicleID: "v-9"}},
		"state with a battery signal only": {referenceState, domain.VehicleEvent{ID: "e-1", Type: domain.VehicleEventState, Name: "VEHICLE_STATE",
			VehicleID: "v-1", UserID: "u-1"}},
		"lock as text with seconds": {`{"eventId":"e-2","eventType":"VEHICLE_STATE","vehicleId":"v-1","data":{"signals":[{"group":"closure","name":"islocked","body":{"value":"LOCKED"},"meta":{"oemUpdatedAt":"1761896351"}}]}}`,
			domain.VehicleEvent{ID: "e-2", Type: domain.VehicleEventState, Name: "VEHICLE_STATE", VehicleID: "v-1",
				Lock: &domain.LockObservation{Locked: true, ObservedAt: time.Unix(1761896351, 0).UTC()}}},
		"error: permission, re-auth and a sleepy car": {referenceError, domain.VehicleEvent{ID: "e-3", Type: domain.VehicleEventError,
			Name: "VEHICLE_ERROR", VehicleID: "v-3", UserID: "u-3", Problems: []domain.VehicleProblem{
				{Type: "PERMISSION", Connection: domain.ConnectionRevoked},
				{Type: "CONNECTED_SERVICES_ACCOUNT", Code: "AUTHENTICATION_FAILED", Connection: domain.ConnectionNeedsReauth},
				{Type: "VEHICLE_STATE", Code: "ASLEEP"},
				{Type: "COMPATIBILITY", Code: "VEHICLE_NOT_CAPABLE", Resolved: true},
				{Type: "UNKNOWN_KIND", Code: "X", Connection: domain.ConnectionNeedsReauth},
			}}},
		"wrong member types are skipped": {`{"eventId":7,"eventType":"VEHICLE_STATE","vehicleId":["x"],"data":{"signals":"none","user":5}}`,
			domain.VehicleEvent{Type: domain.VehicleEventState, Name: "VEHICLE_STATE"}},
		"hostile ids are dropped": {`{"eventId":"a b\u0000","eventType":"VEHICLE_STATE","vehicleId":"../../x","data":{}}`,
			domain.VehicleEvent{Type: domain.VehicleEventState, Name: "VEHICLE_STATE"}},
		"unknown event type": {`{"eventId":"e-4","eventType":"VEHICLE_PARTY","data":{}}`,
			domain.VehicleEvent{ID: "e-4", Type: domain.VehicleEventOther, Name: "VEHICLE_PARTY"}},
		// What a v3 (API Authentication) application receives, in the shape of captured deliveries:
		// triggers beside data, retrievedAt, signal statuses, per-door closure values, no
		// top-level vehicleId, TEST mode and a deliveryTime.
		"v3 application state": {referenceV3State, domain.VehicleEvent{ID: "e-6", Type: domain.VehicleEventState, Name: "VEHICLE_STATE",
			VehicleID: "v-6", UserID: "u-6", Lock: &domain.LockObservation{Locked: true,
				ObservedAt: time.UnixMilli(1796637590000).UTC(), FetchedAt: time.UnixMilli(1796637600000).UTC()}}},
		"verify without a challenge": {`{"eventId":"e-5","eventType":"VERIFY","data":{}}`,
			domain.VehicleEvent{ID: "e-5", Type: domain.VehicleEventOther, Name: "VERIFY"}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := w.Decode([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, tc.want); diff != "" {
				t.Errorf("(-got +want):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"", "null", "[]", `"text"`, "{", `{"eventId":"e"} trailing`, "\xff"} {
		if _, err := w.Decode([]byte(bad)); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("Decode(%q) = %v, want a KindInvalid error", bad, err)
		}
	}
}

// Reference payloads (reference §4.2–4.3), also the fuzz target's seeds.
const (
	referenceV3State = `{"eventId":"e-6","eventType":"VEHICLE_STATE","data":{"user":{"id":"u-6"},` +
		`"vehicle":{"id":"v-6","make":"JAGUAR","model":"I-PACE","year":2022},"signals":[` +
		`{"code":"closure-doors","name":"Doors","group":"Closure","status":{"value":"SUCCESS"},` +
		`"body":{"values":[{"row":0,"column":0,"isOpen":false,"isLocked":true},{"row":0,"column":1,"isOpen":false,"isLocked":true}],"rowCount":1,"columnCount":2},` +
		`"meta":{"oemUpdatedAt":1796637590000,"retrievedAt":1796637600000}},` +
		`{"code":"closure-islocked","name":"IsLocked","group":"Closure","status":{"value":"SUCCESS"},"body":{"value":true},` +
		`"meta":{"oemUpdatedAt":1796637590000,"retrievedAt":1796637600000}}]},` +
		`"triggers":[{"type":"SIGNAL_UPDATED","signal":{"name":"IsLocked","code":"closure-islocked","group":"Closure"}}],` +
		`"meta":{"version":"4.0","webhookId":"w","deliveryId":"d","deliveredAt":1796637601000,"deliveryTime":1796637601000,"mode":"TEST","signalCount":2}}`
	referenceVerify = `{"eventId":"52f6e0bb-1369-45da-a61c-9e67d092d6db","eventType":"VERIFY","data":{"challenge":"<random-string>"},` +
		`"meta":{"version":"4.0","webhookId":"5a8e5e38-0000","webhookName":"Example Webhook","deliveryId":"5d569643-0000","deliveredAt":"2025-07-31T19:38:42.332Z"}}`
	referenceState = `{"eventId":"e-1","eventType":"VEHICLE_STATE","vehicleId":"v-1","data":{"user":{"id":"u-1"},` +
		`"vehicle":{"id":"v-1","make":"TESLA","model":"Model 3","year":2023},"triggers":[{"code":"FIRST_DELIVERY"}],` +
		`"signals":[{"code":"tractionbattery-stateofcharge","name":"StateOfCharge","group":"TractionBattery","body":{"unit":"percent","value":78},` +
		`"meta":{"oemUpdatedAt":1761896351529,"fetchedAt":1761896351600}}]},` +
		`"meta":{"version":"4.0","webhookId":"w","webhookName":"n","deliveryId":"d","deliveredAt":1761896351529,"mode":"LIVE","signalCount":1}}`
	referenceError = `{"eventId":"e-3","eventType":"VEHICLE_ERROR","vehicleId":"v-3","data":{"user":{"id":"u-3"},"errors":[` +
		`{"type":"PERMISSION","code":null,"state":"ERROR","resolution":{"type":"REAUTHENTICATE"},"signals":[{"code":"closure-islocked","name":"IsLocked","group":"Closure"}]},` +
		`{"type":"CONNECTED_SERVICES_ACCOUNT","code":"AUTHENTICATION_FAILED","state":"ERROR","resolution":{"type":"REAUTHENTICATE"},"signals":["VehicleIdentification.Nickname"]},` +
		`{"type":"VEHICLE_STATE","code":"ASLEEP","state":"ERROR","resolution":{"type":null}},` +
		`{"type":"COMPATIBILITY","code":"VEHICLE_NOT_CAPABLE","state":"RESOLVED","resolution":{"type":null}},` +
		`{"type":"UNKNOWN_KIND","code":"X","state":"ERROR","resolution":"REAUTHENTICATE"},7]},` +
		`"meta":{"version":"4.0","deliveredAt":1761896351529,"mode":"TEST"}}`
)
