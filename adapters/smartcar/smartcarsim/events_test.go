package smartcarsim_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
)

var meta = smartcarsim.DeliveryMeta{WebhookID: "wh-1", WebhookName: "Example Webhook", DeliveryID: "dl-1",
	DeliveredAt: time.UnixMilli(1761896351529)}

func decode(t *testing.T, e smartcarsim.Event) map[string]any {
	t.Helper()
	b, err := e.Encode(meta)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

var (
	evVehicle = smartcarsim.VehicleRef{ID: "veh-1", Make: "TESLA", Model: "Model 3", Year: 2023}
	oem       = time.UnixMilli(1761896300000)
	fetched   = time.UnixMilli(1761896340000)
)

func TestVehicleStateEventDocumentedShape(t *testing.T) {
	sig := smartcarsim.LockSignal(true, oem, fetched)
	e := smartcarsim.NewVehicleStateEvent(smartcarsim.StateEvent{UserID: "user-1", Vehicle: evVehicle,
		Signals: []smartcarsim.Signal{sig}, Triggers: []smartcarsim.Signal{sig}})
	signal := map[string]any{"code": "closure-islocked", "name": "IsLocked", "group": "Closure", "body": map[string]any{"value": true},
		"meta": map[string]any{"oemUpdatedAt": 1761896300000.0, "fetchedAt": 1761896340000.0}}
	want := map[string]any{
		"eventId": e.ID, "eventType": "VEHICLE_STATE", "vehicleId": "veh-1",
		"data": map[string]any{
			"user":     map[string]any{"id": "user-1"},
			"vehicle":  map[string]any{"id": "veh-1", "make": "TESLA", "model": "Model 3", "year": 2023.0},
			"triggers": []any{map[string]any{"code": "closure-islocked", "name": "IsLocked", "group": "Closure"}},
			"signals":  []any{signal},
		},
		"meta": map[string]any{"version": "4.0", "webhookId": "wh-1", "webhookName": "Example Webhook", "deliveryId": "dl-1",
			"deliveredAt": 1761896351529.0, "mode": "LIVE", "signalCount": 1.0},
	}
	if diff := cmp.Diff(decode(t, e), want); diff != "" {
		t.Errorf("(-got +want):\n%s", diff)
	}
}

func TestVehicleStateEventDrift(t *testing.T) {
	sig := smartcarsim.LockSignal(false, oem, fetched)
	e := smartcarsim.NewVehicleStateEvent(smartcarsim.StateEvent{UserID: "user-1", Vehicle: evVehicle, Mode: "TEST",
		Signals:  []smartcarsim.Signal{sig, {Code: "closure-doors", Name: "Doors", Group: "Closure", ErrorType: "COMPATIBILITY", ErrorCode: "VEHICLE_NOT_CAPABLE"}},
		Triggers: []smartcarsim.Signal{sig},
		Drift:    smartcarsim.Drift{TopLevelTriggers: true, RetrievedAt: true, SignalStatus: true, OmitVehicleID: true, DeliveredAtISO: true, Version: "3.0"}})
	got := decode(t, e)
	data := got["data"].(map[string]any)
	signals := data["signals"].([]any)
	gotBits := []any{got["vehicleId"], got["triggers"], data["triggers"], got["meta"].(map[string]any)["deliveredAt"],
		got["meta"].(map[string]any)["version"], got["meta"].(map[string]any)["mode"], signals[0].(map[string]any)["status"],
		signals[0].(map[string]any)["meta"], signals[1].(map[string]any)["status"], signals[1].(map[string]any)["body"]}
	wantBits := []any{nil, []any{map[string]any{"type": "SIGNAL_UPDATED", "signal": map[string]any{"code": "closure-islocked", "name": "IsLocked", "group": "Closure"}}},
		nil, "2025-10-31T07:39:11.529Z", "3.0", "TEST", map[string]any{"value": "SUCCESS"},
		map[string]any{"oemUpdatedAt": 1761896300000.0, "retrievedAt": 1761896340000.0},
		map[string]any{"value": "ERROR", "error": map[string]any{"code": "VEHICLE_NOT_CAPABLE", "type": "COMPATIBILITY"}}, nil}
	if diff := cmp.Diff(gotBits, wantBits); diff != "" {
		t.Errorf("(-got +want):\n%s", diff)
	}
	first := decode(t, smartcarsim.NewVehicleStateEvent(smartcarsim.StateEvent{Vehicle: evVehicle,
		Drift: smartcarsim.Drift{TopLevelTriggers: true, StringTriggerSignal: true}}))
	if diff := cmp.Diff(first["triggers"], []any{map[string]any{"type": "FIRST_DELIVERY"}}); diff != "" {
		t.Errorf("first delivery (-got +want):\n%s", diff)
	}
	str := decode(t, smartcarsim.NewVehicleStateEvent(smartcarsim.StateEvent{Vehicle: evVehicle, Triggers: []smartcarsim.Signal{sig},
		Drift: smartcarsim.Drift{TopLevelTriggers: true, StringTriggerSignal: true}}))
	if diff := cmp.Diff(str["triggers"], []any{map[string]any{"type": "SIGNAL_UPDATED", "signal": "Closure.IsLocked"}}); diff != "" {
		t.Errorf("string trigger (-got +want):\n%s", diff)
	}
}

func TestVehicleErrorEvent(t *testing.T) {
	sig := smartcarsim.Signal{Code: "vehicleidentification-nickname", Name: "Nickname", Group: "VehicleIdentification"}
	for _, asStrings := range []bool{false, true} {
		e := smartcarsim.NewVehicleErrorEvent(smartcarsim.ErrorEvent{UserID: "user-1", Vehicle: evVehicle, Drift: smartcarsim.Drift{ErrorSignalsAsStrings: asStrings},
			Errors: []smartcarsim.VehicleError{{Type: "PERMISSION", Code: "", Resolution: "REAUTHENTICATE", Description: "d", Signals: []smartcarsim.Signal{sig}}}})
		got := decode(t, e)["data"].(map[string]any)["errors"].([]any)[0].(map[string]any)
		wantSignal := any(map[string]any{"code": "vehicleidentification-nickname", "name": "Nickname", "group": "VehicleIdentification"})
		if asStrings {
			wantSignal = "VehicleIdentification.Nickname"
		}
		gotBits := []any{got["type"], got["state"], got["resolution"], got["signals"]}
		wantBits := []any{"PERMISSION", "ERROR", map[string]any{"type": "REAUTHENTICATE"}, []any{wantSignal}}
		if diff := cmp.Diff(gotBits, wantBits); diff != "" {
			t.Errorf("strings %v (-got +want):\n%s", asStrings, diff)
		}
	}
}

func TestVerifyAndLegacyShapes(t *testing.T) {
	v := smartcarsim.NewVerifyEvent("ch-1")
	want := map[string]any{"eventId": v.ID, "eventType": "VERIFY", "data": map[string]any{"challenge": "ch-1"},
		"meta": map[string]any{"version": "4.0", "webhookId": "wh-1", "webhookName": "Example Webhook", "deliveryId": "dl-1", "deliveredAt": 1761896351529.0}}
	if diff := cmp.Diff(decode(t, v), want); diff != "" || v.Challenge() != "ch-1" {
		t.Errorf("VERIFY (-got +want):\n%s", diff)
	}
	legacy := map[string]any{"version": "2.0", "webhookId": "wh-1", "eventName": "verify", "payload": map[string]any{"challenge": "ch-2"}}
	if diff := cmp.Diff(decode(t, smartcarsim.NewLegacyVerifyEvent("ch-2")), legacy); diff != "" {
		t.Errorf("legacy verify (-got +want):\n%s", diff)
	}
	eb := decode(t, smartcarsim.NewLegacyEventBased("veh-1", "CHARGING_STARTED", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), ""))
	p := eb["payload"].(map[string]any)
	if eb["eventName"] != "eventBased" || eb["mode"] != "live" || p["vehicleId"] != "veh-1" || p["eventTime"] != "2026-01-02T03:04:05Z" || p["eventId"] == "" {
		t.Errorf("legacy eventBased %v", eb)
	}
	sc := decode(t, smartcarsim.NewLegacySchedule("test", "a", "b"))
	if diff := cmp.Diff(sc["payload"], map[string]any{"vehicles": []any{map[string]any{"vehicleId": "a"}, map[string]any{"vehicleId": "b"}}}); diff != "" {
		t.Errorf("legacy schedule (-got +want):\n%s", diff)
	}
}

func TestLockStateEventAndSignedBody(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	u := e.sim.CreateUser(smartcarsim.DefaultFleet()...)
	e.clock.Advance(time.Minute)
	if err := e.sim.SetLocked(u.VehicleIDs[1], false); err != nil {
		t.Fatal(err)
	}
	ev, err := e.sim.LockStateEvent(u.VehicleIDs[1], smartcarsim.Drift{})
	if err != nil {
		t.Fatal(err)
	}
	body, sig, err := e.sim.SignedBody(ev)
	if err != nil || sig != smartcarsim.Sign(smartcarsim.DevManagementToken, body) {
		t.Fatalf("SignedBody: %v", err)
	}
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	data := m["data"].(map[string]any)
	s := data["signals"].([]any)[0].(map[string]any)
	got := []any{m["vehicleId"], data["user"], data["vehicle"].(map[string]any)["make"], s["body"], s["meta"].(map[string]any)["oemUpdatedAt"]}
	want := []any{u.VehicleIDs[1], map[string]any{"id": u.ID}, "FORD", map[string]any{"value": false}, float64(start.Add(time.Minute).UnixMilli())}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("(-got +want):\n%s", diff)
	}
	if _, err := e.sim.LockStateEvent("nope", smartcarsim.Drift{}); err == nil {
		t.Error("LockStateEvent accepted an unknown vehicle")
	}
}

// Event bodies are written without HTML escaping, as Smartcar writes them: a verifier that
// re-serialises the payload (as Smartcar's SDK helpers do) comes to the signed bytes.
func TestEventBodiesAreNotHTMLEscaped(t *testing.T) {
	e := smartcarsim.NewVehicleErrorEvent(smartcarsim.ErrorEvent{UserID: "user-1", Vehicle: evVehicle,
		Errors: []smartcarsim.VehicleError{{Type: "CONNECTED_SERVICES_ACCOUNT", Code: "AUTHENTICATION_FAILED", Resolution: "REAUTHENTICATE",
			Description: "d", SuggestedUserMessage: "Your car got disconnected from <app name> & needs <link>."}}})
	body, err := e.Encode(smartcarsim.DeliveryMeta{WebhookID: "wh", WebhookName: "BetterKey", DeliveryID: "d", DeliveredAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte("<app name> & needs <link>")) {
		t.Fatalf("body escapes HTML: %s", body)
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	enc := json.NewEncoder(&again)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	if got := bytes.TrimSuffix(again.Bytes(), []byte("\n")); !bytes.Equal(got, body) {
		t.Errorf("re-serialised body differs from the signed one:\n%s\n%s", got, body)
	}
}
