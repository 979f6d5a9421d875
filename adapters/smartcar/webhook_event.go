package smartcar

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/betterkey/backend/adapters/internal/epoch"
	"github.com/betterkey/backend/domain"
)

// Decoding bounds: a 50 KB delivery (Smartcar's maximum) holds far fewer; the caps keep a hostile
// or broken sender cheap even after its signature checked out.
const (
	maxEventSignals  = 512
	maxEventProblems = 32
	maxWebhookID     = 128
)

// errNotAnEvent is Decode's only error: the body is not a JSON object.
var errNotAnEvent = fmt.Errorf("decode webhook event: %w", domain.Invalid("body", "is not a JSON object"))

// object is one JSON object whose members are decoded on demand, so that a member of an
// unexpected type is skipped instead of failing the whole event (reference §4.3: parse leniently).
type object map[string]json.RawMessage

// Decode implements ports.VehicleEvents for the v4 envelope with the shape drift seen in real
// deliveries (triggers beside data, retrievedAt for fetchedAt, deliveredAt as text, vehicleId only
// inside data, error signals as strings, meta.version 3.0) and for the legacy v2 envelope. Call it
// only on a body Authenticate accepted.
func (w *Webhooks) Decode(body []byte) (domain.VehicleEvent, error) {
	var env object
	if err := json.Unmarshal(body, &env); err != nil || env == nil {
		return domain.VehicleEvent{}, errNotAnEvent
	}
	if _, legacy := env["eventName"]; legacy {
		if _, v4 := env["eventType"]; !v4 {
			return decodeLegacy(env), nil
		}
	}
	data := env.obj("data")
	ev := domain.VehicleEvent{
		ID:        webhookID(env.str("eventId")),
		Name:      identifier(env.str("eventType")),
		VehicleID: webhookID(env.str("vehicleId")),
		UserID:    webhookID(data.obj("user").str("id")),
	}
	if ev.VehicleID == "" {
		ev.VehicleID = webhookID(data.obj("vehicle").str("id"))
	}
	switch strings.ToUpper(ev.Name) {
	case "VERIFY":
		ev.Type, ev.Challenge = domain.VehicleEventOther, ""
		if c, ok := data.text("challenge"); ok {
			ev.Type, ev.Challenge = domain.VehicleEventVerify, c
		}
	case "VEHICLE_STATE":
		ev.Type, ev.Lock = domain.VehicleEventState, lockFrom(data.list("signals"))
	case "VEHICLE_ERROR":
		ev.Type, ev.Problems = domain.VehicleEventError, problemsFrom(data.list("errors"))
	default:
		ev.Type = domain.VehicleEventOther
	}
	return ev, nil
}

// decodeLegacy reads the v2.0 envelope: {"version","webhookId","eventName","mode","payload"}.
// Only verify means anything to BetterKey; eventBased and schedule events are charging news.
func decodeLegacy(env object) domain.VehicleEvent {
	payload := env.obj("payload")
	ev := domain.VehicleEvent{
		Type: domain.VehicleEventOther, Name: identifier(env.str("eventName")),
		ID: webhookID(payload.str("eventId")), VehicleID: webhookID(payload.str("vehicleId")),
	}
	if strings.EqualFold(ev.Name, "verify") {
		if c, ok := payload.text("challenge"); ok {
			ev.Type, ev.Challenge = domain.VehicleEventVerify, c
		}
	}
	return ev
}

// lockFrom finds Closure.IsLocked among the signals and returns the newest successful reading
// that says when it was observed; nil when there is none. A signal without any time cannot be
// ordered against others and is ignored rather than guessed.
func lockFrom(signals []json.RawMessage) *domain.LockObservation {
	var best *domain.LockObservation
	for i, raw := range signals {
		if i == maxEventSignals {
			break
		}
		sg := parseObject(raw)
		if !isLockSignal(sg) || strings.EqualFold(sg.obj("status").str("value"), "ERROR") {
			continue
		}
		locked, ok := lockValue(sg.obj("body")["value"])
		if !ok {
			continue
		}
		meta := sg.obj("meta")
		fetched := firstTime(meta["fetchedAt"], meta["retrievedAt"])
		observed := firstTime(meta["oemUpdatedAt"], meta["fetchedAt"], meta["retrievedAt"])
		if observed.IsZero() {
			continue
		}
		if best == nil || observed.After(best.ObservedAt) {
			best = &domain.LockObservation{Locked: locked, ObservedAt: observed, FetchedAt: fetched}
		}
	}
	return best
}

// isLockSignal recognises Closure.IsLocked by its code or by group and name, in any case.
func isLockSignal(sg object) bool {
	return strings.EqualFold(sg.str("code"), "closure-islocked") ||
		strings.EqualFold(sg.str("group"), "Closure") && strings.EqualFold(sg.str("name"), "IsLocked")
}

// lockValue reads a lock state: a JSON boolean, or a string spelling one (true/false,
// LOCKED/UNLOCKED) in any case.
func lockValue(raw json.RawMessage) (bool, bool) {
	switch string(bytes.TrimSpace(raw)) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return false, false
	}
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TRUE", "LOCKED":
		return true, true
	case "FALSE", "UNLOCKED":
		return false, true
	}
	return false, false
}

// problemsFrom reads VEHICLE_ERROR entries and classifies each with the same table as API
// errors (§3.2), so a webhook and a failed call mark a connection alike.
func problemsFrom(errs []json.RawMessage) []domain.VehicleProblem {
	var out []domain.VehicleProblem
	for _, raw := range errs {
		if len(out) == maxEventProblems {
			break
		}
		e := parseObject(raw)
		if e == nil {
			continue
		}
		p := domain.VehicleProblem{
			Type: identifier(strings.ToUpper(e.str("type"))), Code: identifier(strings.ToUpper(e.str("code"))),
			Resolved: strings.EqualFold(e.str("state"), "RESOLVED"),
		}
		resolution := e.obj("resolution").str("type")
		if resolution == "" {
			resolution = e.str("resolution") // the legacy string form
		}
		switch apiClass(p.Type, p.Code, 0).err {
		case domain.ErrReauthRequired:
			p.Connection = domain.ConnectionNeedsReauth
		case domain.ErrConsentRevoked:
			p.Connection = domain.ConnectionRevoked
		default:
			if strings.EqualFold(resolution, "REAUTHENTICATE") {
				p.Connection = domain.ConnectionNeedsReauth
			}
		}
		out = append(out, p)
	}
	return out
}

// firstTime returns the first of the raw values that reads as a time.
func firstTime(raws ...json.RawMessage) time.Time {
	for _, raw := range raws {
		if t, ok := eventTime(raw); ok {
			return t
		}
	}
	return time.Time{}
}

// eventTime reads a time as Smartcar sends it: epoch milliseconds (seconds are tolerated; a
// value below 1e11 cannot be a millisecond time after 1973), as a number or a numeric string,
// or an RFC 3339 string.
func eventTime(raw json.RawMessage) (time.Time, bool) {
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		if t, ok := epoch.Parse(n.String()); ok {
			return t, true
		}
	}
	var s string
	if json.Unmarshal(raw, &s) != nil || s == "" {
		return time.Time{}, false
	}
	if t, ok := epoch.Parse(s); ok {
		return t, true
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil && t.Year() > 1970 && t.Year() < 3000 {
		return t.UTC(), true
	}
	return time.Time{}, false
}

// webhookID keeps an id only when it has the shape ids have (letters, digits and . _ : -, at most
// maxWebhookID), so nothing else an event carries becomes a key or reaches a log line.
func webhookID(s string) string {
	if s == "" || len(s) > maxWebhookID {
		return ""
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return ""
		}
	}
	return s
}

// parseObject decodes raw as an object, nil when it is not one.
func parseObject(raw json.RawMessage) object {
	var o object
	if json.Unmarshal(raw, &o) != nil {
		return nil
	}
	return o
}

// obj returns member k as an object, nil when absent or not an object.
func (o object) obj(k string) object { return parseObject(o[k]) }

// list returns member k as an array, nil when absent or not an array.
func (o object) list(k string) []json.RawMessage {
	var l []json.RawMessage
	if json.Unmarshal(o[k], &l) != nil {
		return nil
	}
	return l
}

// text returns member k when it is a string.
func (o object) text(k string) (string, bool) {
	raw, ok := o[k]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// str returns member k when it is a string, else "".
func (o object) str(k string) string {
	s, _ := o.text(k)
	return s
}
