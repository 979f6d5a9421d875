package smartcarsim

import (
	"crypto/subtle"
	"encoding/base64"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AppTokenLifetime is how long an application (M2M) token lives (reference §0: 3600 s).
const AppTokenLifetime = time.Hour

// DefaultSignalPageSize pages GET /v3/vehicles/{id}/signals; Smartcar's example shows 10.
const DefaultSignalPageSize = 10

// SetLongRunningCommands makes v3 lock and unlock commands answer 202, as a car that takes its
// time does: the car reaches the requested state delay later on the simulator's clock. A
// negative delay restores synchronous 200 answers.
func (s *Simulator) SetLongRunningCommands(delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.longRunning = delay
}

// settle applies a long-running command whose time has come; s.mu is held.
func (v *vehicle) settle(now time.Time) {
	if v.pending != nil && !now.Before(v.pendingAt) {
		v.locked, v.updatedAt, v.pending = *v.pending, v.pendingAt, nil
	}
}

// handleAppToken serves POST /oauth2/token: the client_credentials grant of an application
// token, credentials in the form (or, tolerated, as Basic).
func (s *Simulator) handleAppToken(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded.")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSimBody))
	form, perr := url.ParseQuery(string(body))
	if err != nil || perr != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Malformed request body.")
		return
	}
	id, secret := form.Get("client_id"), form.Get("client_secret")
	if bid, bsecret, ok := r.BasicAuth(); ok && id == "" {
		id, secret = bid, bsecret
	}
	if form.Get("grant_type") != "client_credentials" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "grant_type must be client_credentials.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(id), []byte(s.opts.ClientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) != 1 {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "Invalid client credentials.")
		return
	}
	token := newUUID()
	s.mu.Lock()
	s.apps[token] = s.now().Add(AppTokenLifetime)
	s.mu.Unlock()
	s.appTokens.Add(1)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"access_token": token, "token_type": "Bearer",
		"expires_in": int(AppTokenLifetime / time.Second)})
}

// ExpireAppTokens kills every application token, as a rotated client secret or an early
// expiry would.
func (s *Simulator) ExpireAppTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.apps)
}

// authenticateApp checks a v3 call: a live application token and an sc-user-id whose newest
// live grant covers the path's vehicle. It answers 401 AUTHENTICATION for the token, 400
// VALIDATION without a user, 403 PERMISSION when no grant of that user covers the vehicle.
func (s *Simulator) authenticateApp(w http.ResponseWriter, r *http.Request) (*grant, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	user := r.Header.Get("sc-user-id")
	id := r.PathValue("id")
	now := s.now()
	s.mu.Lock()
	exp, found := s.apps[token]
	var g *grant
	for _, c := range slices.Backward(s.grants) {
		if c.userID == user && c.clientID == s.opts.ClientID && !c.revoked && c.covers(id) {
			g = c
			break
		}
	}
	s.mu.Unlock()
	switch {
	case !ok || !found || !now.Before(exp):
		writeAPIError(w, http.StatusUnauthorized, "AUTHENTICATION", "", 0)
		return nil, false
	case user == "":
		writeAPIError(w, http.StatusBadRequest, "VALIDATION", "PARAMETER", 0)
		return nil, false
	case g == nil:
		writeAPIError(w, http.StatusForbidden, "PERMISSION", "", 0)
		return nil, false
	}
	return g, true
}

// handleV3Vehicle serves GET /v3/vehicles/{id} (read_vehicle_info).
func (s *Simulator) handleV3Vehicle(w http.ResponseWriter, r *http.Request) {
	v, ok := s.appVehicle(w, r, "read_vehicle_info")
	if !ok || s.afterEffect(w, r, EndpointAttributes) {
		return
	}
	writeJSON(w, http.StatusOK, v3VehicleJSON(v))
}

func v3VehicleJSON(v vehicle) map[string]any {
	return map[string]any{"id": v.id, "type": "vehicle",
		"attributes": map[string]any{"make": v.spec.Make, "model": v.spec.Model, "year": v.spec.Year},
		"links":      map[string]string{"self": "/vehicles/" + v.id}}
}

// v3SignalCodes are the signals a simulated car reports, in list order: its lock state and, per
// door and window, whether it is open (the doors lock with the car).
var v3SignalCodes = []string{"closure-islocked", "closure-doors", "closure-windows"}

// v3Signal is one of the car's signals as v3 reports it; false for a code the car lacks.
func (s *Simulator) v3Signal(v vehicle, code string) (map[string]any, bool) {
	var name string
	var body map[string]any
	switch code {
	case "closure-islocked":
		name, body = "IsLocked", map[string]any{"value": v.locked}
	case "closure-doors":
		name, body = "Doors", closureGrid(v, true)
	case "closure-windows":
		name, body = "Windows", closureGrid(v, false)
	default:
		return nil, false
	}
	return map[string]any{"id": newUUID(), "type": "signal",
		"attributes": map[string]any{"code": code, "name": name, "group": "Closure",
			"status": map[string]string{"value": "SUCCESS"}, "body": body},
		"meta":  map[string]any{"retrievedAt": s.now().UnixMilli(), "oemUpdatedAt": v.updatedAt.UnixMilli()},
		"links": map[string]string{"self": "/vehicles/" + v.id + "/signals/" + code, "vehicle": "/vehicles/" + v.id}}, true
}

// closureGrid is a per-opening body: four closed openings in two rows, each locked with the car
// when locks is set.
func closureGrid(v vehicle, locks bool) map[string]any {
	values := make([]map[string]any, 0, 4)
	for row := range 2 {
		for col := range 2 {
			e := map[string]any{"row": row, "column": col, "isOpen": false}
			if locks {
				e["isLocked"] = v.locked
			}
			values = append(values, e)
		}
	}
	return map[string]any{"values": values, "rowCount": 2, "columnCount": 2}
}

// appVehicle resolves a v3 call's vehicle for the application acting for sc-user-id, with perm:
// authenticateApp, then vehicleFor's permission and rate-limit checks.
func (s *Simulator) appVehicle(w http.ResponseWriter, r *http.Request, perm string) (vehicle, bool) {
	g, ok := s.authenticateApp(w, r)
	if !ok {
		return vehicle{}, false
	}
	return s.vehicleFor(w, r, g, perm)
}

// handleV3Signals serves GET /v3/vehicles/{id}/signals?page=&pageSize= (the closure signals,
// read_security), paged with meta and links as Smartcar pages it.
func (s *Simulator) handleV3Signals(w http.ResponseWriter, r *http.Request) {
	v, ok := s.appVehicle(w, r, "read_security")
	if !ok || refuseByCondition(w, v.condition, false) {
		return
	}
	page, okP := intParam(r, "page", 1)
	size, okS := intParam(r, "pageSize", DefaultSignalPageSize)
	if !okP || !okS || page < 1 || size < 1 || size > MaxPageLimit {
		writeAPIError(w, http.StatusBadRequest, "VALIDATION", "PARAMETER", 0)
		return
	}
	if s.afterEffect(w, r, EndpointLockStatus) {
		return
	}
	all := make([]map[string]any, 0, len(v3SignalCodes))
	for _, code := range v3SignalCodes {
		sg, _ := s.v3Signal(v, code)
		all = append(all, sg)
	}
	data := []map[string]any{}
	if from := (page - 1) * size; from < len(all) {
		data = all[from:min(from+size, len(all))]
	}
	last := max(1, (len(all)+size-1)/size)
	link := func(p int) string {
		return "/vehicles/" + v.id + "/signals?page=" + strconv.Itoa(p) + "&pageSize=" + strconv.Itoa(size)
	}
	links := map[string]string{"self": link(page), "first": link(1), "last": link(last)}
	if page > 1 {
		links["previous"] = link(page - 1)
	}
	if page < last {
		links["next"] = link(page + 1)
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data,
		"meta":     map[string]int{"page": page, "pageSize": size, "totalCount": len(all)},
		"links":    links,
		"included": map[string]any{"vehicle": v3VehicleJSON(v)}})
}

// handleV3Signal serves GET /v3/vehicles/{id}/signals/{code}: one signal, bare.
func (s *Simulator) handleV3Signal(w http.ResponseWriter, r *http.Request) {
	v, ok := s.appVehicle(w, r, "read_security")
	if !ok || refuseByCondition(w, v.condition, false) || s.afterEffect(w, r, EndpointLockStatus) {
		return
	}
	sg, ok := s.v3Signal(v, r.PathValue("code"))
	if !ok {
		writeAPIError(w, http.StatusNotFound, "RESOURCE_NOT_FOUND", "PATH", 0)
		return
	}
	writeJSON(w, http.StatusOK, sg)
}

// handleV3Security serves POST /v3/vehicles/{id}/commands/security/{lock|unlock}
// (control_security, no body): 200 with a sync command execution, or 202 while the car takes
// its time (SetLongRunningCommands).
func (s *Simulator) handleV3Security(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	if action != "lock" && action != "unlock" {
		writeAPIError(w, http.StatusNotFound, "RESOURCE_NOT_FOUND", "PATH", 0)
		return
	}
	v, ok := s.appVehicle(w, r, "control_security")
	if !ok || refuseByCondition(w, v.condition, true) {
		return
	}
	now, locked := s.now(), action == "lock"
	s.mu.Lock()
	car, delay := s.vehicles[v.id], s.longRunning
	if delay >= 0 {
		car.pending, car.pendingAt = &locked, now.Add(delay)
	} else {
		car.locked, car.updatedAt = locked, now
	}
	car.commands++
	s.mu.Unlock()
	s.commands.Add(1)
	if s.afterEffect(w, r, EndpointSecurity) {
		return
	}
	exec := map[string]any{"id": "exec_" + strings.ReplaceAll(newUUID(), "-", ""), "type": "command-execution"}
	attrs := map[string]any{"commandType": "security-" + action}
	if delay >= 0 {
		attrs["status"], attrs["executionMode"] = map[string]string{"value": "PENDING"}, "async"
		exec["attributes"] = attrs
		writeJSON(w, http.StatusAccepted, map[string]any{"data": exec})
		return
	}
	attrs["status"], attrs["executionMode"] = map[string]string{"value": "SUCCESS"}, "sync"
	exec["attributes"] = attrs
	at := now.UTC().Format(time.RFC3339)
	exec["meta"] = map[string]any{"executedAt": at, "completedAt": at, "durationInSeconds": 0}
	writeJSON(w, http.StatusOK, map[string]any{"data": exec})
}

// handleManagementDisconnect serves DELETE /v2.0/management/connections?user_id=&vehicle_id=
// with Basic "default:" + the Application Management Token: the named vehicles leave the
// application's grants; the answer lists the connections deleted.
func (s *Simulator) handleManagementDisconnect(w http.ResponseWriter, r *http.Request) {
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("default:"+s.opts.ManagementToken))
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
		writeAPIError(w, http.StatusUnauthorized, "AUTHENTICATION", "", 0)
		return
	}
	user, vid := r.URL.Query().Get("user_id"), r.URL.Query().Get("vehicle_id")
	if user == "" && vid == "" {
		writeAPIError(w, http.StatusBadRequest, "VALIDATION", "PARAMETER", 0)
		return
	}
	type conn struct {
		UserID    string `json:"userId"`
		VehicleID string `json:"vehicleId"`
	}
	deleted := []conn{}
	s.mu.Lock()
	seen := map[conn]bool{}
	for _, g := range s.grants {
		if g.clientID != s.opts.ClientID || (user != "" && g.userID != user) {
			continue
		}
		g.vehicles = slices.DeleteFunc(g.vehicles, func(id string) bool {
			if vid != "" && id != vid {
				return false
			}
			if c := (conn{g.userID, id}); !seen[c] {
				seen[c] = true
				deleted = append(deleted, c)
			}
			return true
		})
	}
	s.mu.Unlock()
	s.disconnects.Add(int64(len(deleted)))
	if s.afterEffect(w, r, EndpointDisconnect) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"connections": deleted})
}
