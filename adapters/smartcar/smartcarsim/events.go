package smartcarsim

import (
	"fmt"
	"maps"
	"time"
)

// Event types of the v4 webhook envelope and the legacy v2 event names.
const (
	EventVerify       = "VERIFY"
	EventVehicleState = "VEHICLE_STATE"
	EventVehicleError = "VEHICLE_ERROR"

	LegacyVerify     = "verify"
	LegacyEventBased = "eventBased"
	LegacySchedule   = "schedule"
)

// Event is one webhook event. Its id stays the same across delivery attempts; the delivery id
// and time change with each, as Smartcar's do. Build one with the New…Event functions.
type Event struct {
	// ID is the eventId receivers deduplicate on (empty for legacy events, which have none at
	// the envelope level).
	ID string
	// Type is the v4 eventType or the legacy eventName.
	Type      string
	challenge string
	legacy    bool
	isoTime   bool
	doc       map[string]any
}

// Challenge is the challenge of a VERIFY event, "" for others.
func (e Event) Challenge() string { return e.challenge }

// Drift reproduces the deviations from the documented v4 shape seen in captured deliveries
// (reference §4.3), so receivers can be tested against what Smartcar really sends.
type Drift struct {
	// TopLevelTriggers puts triggers beside data as {"type":"SIGNAL_UPDATED","signal":{…}}.
	TopLevelTriggers bool
	// StringTriggerSignal, with TopLevelTriggers, gives the trigger's signal as "Group.Name".
	StringTriggerSignal bool
	// RetrievedAt names the signal meta time retrievedAt instead of fetchedAt.
	RetrievedAt bool
	// SignalStatus adds status {"value":"SUCCESS"} to successful signals.
	SignalStatus bool
	// OmitVehicleID leaves out the envelope's vehicleId.
	OmitVehicleID bool
	// DeliveredAtISO sends meta.deliveredAt as an ISO string instead of epoch milliseconds.
	DeliveredAtISO bool
	// ErrorSignalsAsStrings lists a VEHICLE_ERROR's signals as "Group.Name" strings.
	ErrorSignalsAsStrings bool
	// Version is meta.version (default "4.0"; an older page shows "3.0").
	Version string
}

// VehicleRef is the vehicle an event is about.
type VehicleRef struct {
	ID, Make, Model string
	Year            int
}

// Signal is one v4 signal. A failed one has ErrorType/ErrorCode and no Body.
type Signal struct {
	Code, Name, Group    string
	Body                 map[string]any
	ErrorType, ErrorCode string
	OEMUpdatedAt         time.Time
	FetchedAt            time.Time
}

// LockSignal is Closure.IsLocked, the signal a car key cares about.
func LockSignal(locked bool, oemUpdatedAt, fetchedAt time.Time) Signal {
	return Signal{Code: "closure-islocked", Name: "IsLocked", Group: "Closure", Body: map[string]any{"value": locked},
		OEMUpdatedAt: oemUpdatedAt, FetchedAt: fetchedAt}
}

// StateEvent describes a VEHICLE_STATE event.
type StateEvent struct {
	UserID  string
	Vehicle VehicleRef
	Signals []Signal
	// Triggers are the signals whose change caused the event; none means FIRST_DELIVERY.
	Triggers []Signal
	Mode     string // meta.mode, default "LIVE"
	Drift    Drift
}

// NewVehicleStateEvent builds a VEHICLE_STATE event.
func NewVehicleStateEvent(o StateEvent) Event {
	signals := make([]any, 0, len(o.Signals))
	for _, sg := range o.Signals {
		signals = append(signals, signalJSON(sg, o.Drift))
	}
	data := map[string]any{"user": map[string]any{"id": o.UserID}, "vehicle": vehicleJSON(o.Vehicle), "signals": signals}
	doc := envelope(EventVehicleState, o.Vehicle.ID, o.Mode, o.Drift, data)
	doc["meta"].(map[string]any)["signalCount"] = len(signals)
	triggers := make([]any, 0, max(1, len(o.Triggers)))
	for _, t := range o.Triggers {
		switch {
		case o.Drift.TopLevelTriggers && o.Drift.StringTriggerSignal:
			triggers = append(triggers, map[string]any{"type": "SIGNAL_UPDATED", "signal": t.Group + "." + t.Name})
		case o.Drift.TopLevelTriggers:
			triggers = append(triggers, map[string]any{"type": "SIGNAL_UPDATED", "signal": map[string]any{"code": t.Code, "name": t.Name, "group": t.Group}})
		default:
			triggers = append(triggers, map[string]any{"code": t.Code, "name": t.Name, "group": t.Group})
		}
	}
	if len(triggers) == 0 {
		if o.Drift.TopLevelTriggers {
			triggers = append(triggers, map[string]any{"type": "FIRST_DELIVERY"})
		} else {
			triggers = append(triggers, map[string]any{"code": "FIRST_DELIVERY"})
		}
	}
	if o.Drift.TopLevelTriggers {
		doc["triggers"] = triggers
	} else {
		data["triggers"] = triggers
	}
	return Event{ID: doc["eventId"].(string), Type: EventVehicleState, isoTime: o.Drift.DeliveredAtISO, doc: doc}
}

// VehicleError is one entry of a VEHICLE_ERROR event.
type VehicleError struct {
	Type, Code string
	// Resolved sends state RESOLVED, the event Smartcar sends when the condition clears.
	Resolved             bool
	Description          string
	SuggestedUserMessage string
	Resolution           string // RETRY_LATER, REAUTHENTICATE, …; "" sends null
	Signals              []Signal
}

// ErrorEvent describes a VEHICLE_ERROR event.
type ErrorEvent struct {
	UserID  string
	Vehicle VehicleRef
	Errors  []VehicleError
	Mode    string
	Drift   Drift
}

// NewVehicleErrorEvent builds a VEHICLE_ERROR event.
func NewVehicleErrorEvent(o ErrorEvent) Event {
	errs := make([]any, 0, len(o.Errors))
	for _, e := range o.Errors {
		state := "ERROR"
		if e.Resolved {
			state = "RESOLVED"
		}
		var resolution any
		if e.Resolution != "" {
			resolution = e.Resolution
		}
		sigs := make([]any, 0, len(e.Signals))
		for _, sg := range e.Signals {
			if o.Drift.ErrorSignalsAsStrings {
				sigs = append(sigs, sg.Group+"."+sg.Name)
			} else {
				sigs = append(sigs, map[string]any{"code": sg.Code, "name": sg.Name, "group": sg.Group})
			}
		}
		errs = append(errs, map[string]any{"type": e.Type, "code": e.Code, "state": state, "description": e.Description,
			"suggestedUserMessage": e.SuggestedUserMessage, "resolution": map[string]any{"type": resolution}, "signals": sigs,
			"docURL": "https://smartcar.com/docs/errors/api-errors/" + e.Type})
	}
	data := map[string]any{"user": map[string]any{"id": o.UserID}, "vehicle": vehicleJSON(o.Vehicle), "errors": errs}
	doc := envelope(EventVehicleError, o.Vehicle.ID, o.Mode, o.Drift, data)
	return Event{ID: doc["eventId"].(string), Type: EventVehicleError, isoTime: o.Drift.DeliveredAtISO, doc: doc}
}

// NewVerifyEvent builds the v4 VERIFY challenge.
func NewVerifyEvent(challenge string) Event {
	doc := envelope(EventVerify, "", "", Drift{}, map[string]any{"challenge": challenge})
	delete(doc["meta"].(map[string]any), "mode")
	return Event{ID: doc["eventId"].(string), Type: EventVerify, challenge: challenge, doc: doc}
}

// NewLegacyVerifyEvent builds the v2.0 verify challenge.
func NewLegacyVerifyEvent(challenge string) Event {
	return Event{Type: LegacyVerify, challenge: challenge, legacy: true,
		doc: map[string]any{"version": "2.0", "eventName": LegacyVerify, "payload": map[string]any{"challenge": challenge}}}
}

// NewLegacyEventBased builds a v2.0 eventBased event (charging started/stopped/completed).
func NewLegacyEventBased(vehicleID, eventType string, at time.Time, mode string) Event {
	id := newUUID()
	return Event{Type: LegacyEventBased, legacy: true, doc: map[string]any{"version": "2.0", "eventName": LegacyEventBased,
		"mode": orString(mode, "live"), "payload": map[string]any{"eventId": id, "vehicleId": vehicleID, "eventType": eventType,
			"eventTime": at.UTC().Format(time.RFC3339)}}}
}

// NewLegacySchedule builds a v2.0 schedule event listing vehicles (the inner fields per vehicle
// are not documented; this sends the ids).
func NewLegacySchedule(mode string, vehicleIDs ...string) Event {
	vs := make([]any, 0, len(vehicleIDs))
	for _, id := range vehicleIDs {
		vs = append(vs, map[string]any{"vehicleId": id})
	}
	return Event{Type: LegacySchedule, legacy: true, doc: map[string]any{"version": "2.0", "eventName": LegacySchedule,
		"mode": orString(mode, "live"), "payload": map[string]any{"vehicles": vs}}}
}

// DeliveryMeta is what changes from one delivery attempt to the next.
type DeliveryMeta struct {
	WebhookID, WebhookName string
	DeliveryID             string
	DeliveredAt            time.Time
}

// Encode renders the body of one delivery attempt.
func (e Event) Encode(m DeliveryMeta) ([]byte, error) {
	doc := maps.Clone(e.doc)
	if e.legacy {
		doc["webhookId"] = m.WebhookID
	} else {
		meta := maps.Clone(doc["meta"].(map[string]any))
		meta["webhookId"], meta["webhookName"], meta["deliveryId"] = m.WebhookID, m.WebhookName, m.DeliveryID
		meta["deliveredAt"] = m.DeliveredAt.UnixMilli()
		if e.isoTime {
			meta["deliveredAt"] = m.DeliveredAt.UTC().Format("2006-01-02T15:04:05.000Z")
		}
		doc["meta"] = meta
	}
	b, err := marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode webhook event: %w", err)
	}
	return b, nil
}

// LockStateEvent builds the VEHICLE_STATE event Smartcar would send for a car's current lock
// state, triggered by Closure.IsLocked.
func (s *Simulator) LockStateEvent(vehicleID string, d Drift) (Event, error) {
	c, ok := s.Car(vehicleID)
	if !ok {
		return Event{}, fmt.Errorf("lock state event: no vehicle %q", vehicleID)
	}
	sig := LockSignal(c.Locked, c.UpdatedAt, s.now())
	return NewVehicleStateEvent(StateEvent{UserID: c.UserID, Vehicle: VehicleRef{ID: c.ID, Make: c.Spec.Make, Model: c.Spec.Model,
		Year: c.Spec.Year}, Signals: []Signal{sig}, Triggers: []Signal{sig}, Mode: s.opts.Webhook.Mode, Drift: d}), nil
}

func envelope(typ, vehicleID, mode string, d Drift, data map[string]any) map[string]any {
	doc := map[string]any{"eventId": newUUID(), "eventType": typ, "data": data,
		"meta": map[string]any{"version": orString(d.Version, "4.0"), "mode": orString(mode, "LIVE")}}
	if vehicleID != "" && !d.OmitVehicleID {
		doc["vehicleId"] = vehicleID
	}
	return doc
}

func vehicleJSON(v VehicleRef) map[string]any {
	return map[string]any{"id": v.ID, "make": v.Make, "model": v.Model, "year": v.Year}
}

func signalJSON(sg Signal, d Drift) map[string]any {
	timeKey := "fetchedAt"
	if d.RetrievedAt {
		timeKey = "retrievedAt"
	}
	m := map[string]any{"code": sg.Code, "name": sg.Name, "group": sg.Group,
		"meta": map[string]any{"oemUpdatedAt": sg.OEMUpdatedAt.UnixMilli(), timeKey: sg.FetchedAt.UnixMilli()}}
	if sg.ErrorType != "" || sg.ErrorCode != "" {
		m["status"] = map[string]any{"value": "ERROR", "error": map[string]any{"code": sg.ErrorCode, "type": sg.ErrorType}}
		return m
	}
	m["body"] = sg.Body
	if d.SignalStatus {
		m["status"] = map[string]any{"value": "SUCCESS"}
	}
	return m
}

func orString(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
