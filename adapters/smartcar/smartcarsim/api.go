package smartcarsim

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// isoMillis is the timestamp form of Smartcar's SC-Data-Age and SC-Fetched-At headers.
const isoMillis = "2006-01-02T15:04:05.000Z07:00"

// authenticate checks the bearer token and returns its grant; it answers 401 AUTHENTICATION for
// a missing, unknown, expired or revoked token.
func (s *Simulator) authenticate(w http.ResponseWriter, r *http.Request) (*grant, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	now := s.now()
	s.mu.Lock()
	t, found := s.access[token]
	valid := ok && found && now.Before(t.expires) && !t.grant.revoked
	s.mu.Unlock()
	if !valid {
		writeAPIError(w, http.StatusUnauthorized, "AUTHENTICATION", "", 0)
		return nil, false
	}
	return t.grant, true
}

// vehicleFor resolves the path's vehicle for g: 403 PERMISSION when the grant does not cover it
// or lacks perm, 429 RATE_LIMIT:VEHICLE while it is rate limited. It returns a snapshot.
func (s *Simulator) vehicleFor(w http.ResponseWriter, r *http.Request, g *grant, perm string) (vehicle, bool) {
	id := r.PathValue("id")
	now := s.now()
	s.mu.Lock()
	v, ok := s.vehicles[id]
	covered := ok && g.covers(id) && (perm == "" || g.scopes[perm])
	var snap vehicle
	if ok {
		v.settle(now)
		snap = *v
	}
	s.mu.Unlock()
	switch {
	case !covered:
		writeAPIError(w, http.StatusForbidden, "PERMISSION", "", 0)
		return vehicle{}, false
	case now.Before(snap.rateLimitedUntil):
		writeAPIError(w, http.StatusTooManyRequests, "RATE_LIMIT", "VEHICLE", snap.rateLimitedUntil.Sub(now))
		return vehicle{}, false
	}
	return snap, true
}

// refuseByCondition answers 409 VEHICLE_STATE when the car's condition refuses the request.
func refuseByCondition(w http.ResponseWriter, c Condition, command bool) bool {
	switch {
	case c == ConditionAsleep:
		writeAPIError(w, http.StatusConflict, "VEHICLE_STATE", "ASLEEP", 0)
	case c == ConditionUnreachable:
		writeAPIError(w, http.StatusConflict, "VEHICLE_STATE", "UNREACHABLE", 0)
	case c == ConditionDriving && command:
		writeAPIError(w, http.StatusConflict, "VEHICLE_STATE", "IN_MOTION", 0)
	default:
		return false
	}
	return true
}

// handleUser serves GET /v2.0/user.
func (s *Simulator) handleUser(w http.ResponseWriter, r *http.Request) {
	g, ok := s.authenticate(w, r)
	if !ok || s.afterEffect(w, r, EndpointUser) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": g.userID})
}

// paging reads limit (1 to MaxPageLimit, default DefaultPageLimit) and offset (0 or more), or
// answers 400 VALIDATION:PARAMETER.
func paging(w http.ResponseWriter, r *http.Request) (limit, offset int, ok bool) {
	limit, okL := intParam(r, "limit", DefaultPageLimit)
	offset, okO := intParam(r, "offset", 0)
	if !okL || !okO || limit < 1 || limit > MaxPageLimit || offset < 0 {
		writeAPIError(w, http.StatusBadRequest, "VALIDATION", "PARAMETER", 0)
		return 0, 0, false
	}
	return limit, offset, true
}

// handleVehicles serves GET /v2.0/vehicles with limit/offset paging; paging.count is the total.
func (s *Simulator) handleVehicles(w http.ResponseWriter, r *http.Request) {
	g, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	limit, offset, ok := paging(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	all := slices.Clone(g.vehicles)
	s.mu.Unlock()
	page := []string{}
	if offset < len(all) {
		page = all[offset:min(offset+limit, len(all))]
	}
	if s.afterEffect(w, r, EndpointVehicles) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"vehicles": page, "paging": map[string]int{"count": len(all), "offset": offset}})
}

func intParam(r *http.Request, name string, def int) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

// handleAttributes serves GET /v2.0/vehicles/{id} (read_vehicle_info).
func (s *Simulator) handleAttributes(w http.ResponseWriter, r *http.Request) {
	g, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	v, ok := s.vehicleFor(w, r, g, "read_vehicle_info")
	if !ok || s.afterEffect(w, r, EndpointAttributes) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": v.id, "make": v.spec.Make, "model": v.spec.Model, "year": v.spec.Year})
}

// handleVIN answers GET /vehicles/{id}/vin (read_vin).
func (s *Simulator) handleVIN(w http.ResponseWriter, r *http.Request) {
	g, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	v, ok := s.vehicleFor(w, r, g, "read_vin")
	if !ok || s.afterEffect(w, r, EndpointVIN) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"vin": v.spec.VIN})
}

// handlePermissions answers GET /vehicles/{id}/permissions?limit=&offset= with what the owner
// granted, sorted, paged as Smartcar pages (paging.count is the total, not the page's).
func (s *Simulator) handlePermissions(w http.ResponseWriter, r *http.Request) {
	g, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if _, ok := s.vehicleFor(w, r, g, ""); !ok {
		return
	}
	limit, offset, ok := paging(w, r)
	if !ok || s.afterEffect(w, r, EndpointPermissions) {
		return
	}
	s.mu.Lock()
	granted := make([]string, 0, len(g.scopes))
	for p := range g.scopes {
		granted = append(granted, p)
	}
	s.mu.Unlock()
	slices.Sort(granted)
	page := granted[min(offset, len(granted)):min(offset+limit, len(granted))]
	writeJSON(w, http.StatusOK, map[string]any{"permissions": page, "paging": map[string]int{"count": len(granted), "offset": offset}})
}

// securityBody is GET /security's answer (reference §2.3).
type securityBody struct {
	IsLocked     bool      `json:"isLocked"`
	Doors        []opening `json:"doors"`
	Windows      []opening `json:"windows"`
	Sunroof      []opening `json:"sunroof"`
	Storage      []opening `json:"storage"`
	ChargingPort []opening `json:"chargingPort"`
}

type opening struct {
	Type   string `json:"type"`
	Status string `json:"status"`
}

func closed(types ...string) []opening {
	out := make([]opening, 0, len(types))
	for _, t := range types {
		out = append(out, opening{Type: t, Status: "CLOSED"})
	}
	return out
}

// handleLockStatus serves GET /v2.0/vehicles/{id}/security (read_security).
func (s *Simulator) handleLockStatus(w http.ResponseWriter, r *http.Request) {
	g, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	v, ok := s.vehicleFor(w, r, g, "read_security")
	if !ok || refuseByCondition(w, v.condition, false) || s.afterEffect(w, r, EndpointLockStatus) {
		return
	}
	four := []string{"frontLeft", "frontRight", "backLeft", "backRight"}
	w.Header().Set("SC-Data-Age", v.updatedAt.UTC().Format(isoMillis))
	w.Header().Set("SC-Fetched-At", s.now().UTC().Format(isoMillis))
	w.Header().Set("SC-Unit-System", "metric")
	writeJSON(w, http.StatusOK, securityBody{
		IsLocked: v.locked, Doors: closed(four...), Windows: closed(four...), Sunroof: closed("sunroof"),
		Storage: closed("rear", "front"), ChargingPort: closed("chargingPort"),
	})
}

// handleSecurity serves POST /v2.0/vehicles/{id}/security (control_security): the command
// reaches the car, which changes its lock state and counts it.
func (s *Simulator) handleSecurity(w http.ResponseWriter, r *http.Request) {
	g, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	v, ok := s.vehicleFor(w, r, g, "control_security")
	if !ok {
		return
	}
	var body struct {
		Action string `json:"action"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSimBody))
	if err != nil || json.Unmarshal(raw, &body) != nil || (body.Action != "LOCK" && body.Action != "UNLOCK") {
		writeAPIError(w, http.StatusBadRequest, "VALIDATION", "PARAMETER", 0)
		return
	}
	if refuseByCondition(w, v.condition, true) {
		return
	}
	now := s.now()
	s.mu.Lock()
	car := s.vehicles[v.id]
	car.locked, car.updatedAt = body.Action == "LOCK", now
	car.commands++
	s.mu.Unlock()
	s.commands.Add(1)
	if s.afterEffect(w, r, EndpointSecurity) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "Successfully sent request to vehicle", "status": "success"})
}

// handleDisconnect serves DELETE /v2.0/vehicles/{id}/application: the vehicle leaves every grant
// the user gave this application, so the tokens no longer reach it.
func (s *Simulator) handleDisconnect(w http.ResponseWriter, r *http.Request) {
	g, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	v, ok := s.vehicleFor(w, r, g, "")
	if !ok {
		return
	}
	s.mu.Lock()
	for _, other := range s.grants {
		if other.userID == g.userID && other.clientID == g.clientID {
			other.vehicles = slices.DeleteFunc(other.vehicles, func(id string) bool { return id == v.id })
		}
	}
	s.mu.Unlock()
	s.disconnects.Add(1)
	if s.afterEffect(w, r, EndpointDisconnect) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "success"})
}
