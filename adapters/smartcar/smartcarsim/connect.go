package smartcarsim

import (
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Outcome is how a Connect session ends. The zero value is consent; the others are the error
// values Connect documents (reference §1.2).
type Outcome string

// The Connect outcomes. A request can also pick one with the query parameter sim_outcome.
const (
	OutcomeConsent             Outcome = ""
	OutcomeAccessDenied        Outcome = "access_denied"
	OutcomeVehicleIncompatible Outcome = "vehicle_incompatible"
	OutcomeNoVehicles          Outcome = "no_vehicles"
	OutcomeInvalidSubscription Outcome = "invalid_subscription"
	OutcomeServerError         Outcome = "server_error"
	OutcomeConfigurationError  Outcome = "configuration_error"
)

// outcomeDescriptions are the error_description texts Connect sends (documented where quoted).
var outcomeDescriptions = map[Outcome]string{
	OutcomeAccessDenied:        "User denied access to application.",
	OutcomeVehicleIncompatible: "The user's vehicle is not compatible.",
	OutcomeNoVehicles:          "No vehicles found. Please add vehicles to your account and try again.",
	OutcomeInvalidSubscription: "User does not have an active connected vehicle subscription.",
	OutcomeServerError:         "Unexpected server error. Please try again.",
	OutcomeConfigurationError:  "There has been an error in the configuration of your application.",
}

// knownPermissions are Smartcar's permissions (reference §5); Connect refuses others.
var knownPermissions = []string{
	"read_alerts", "read_battery", "read_charge", "read_charge_locations", "read_charge_records",
	"read_charge_events", "read_climate", "read_compass", "read_diagnostics", "read_engine_oil",
	"read_extended_vehicle_info", "read_fuel", "read_location", "read_odometer", "read_security",
	"read_service_history", "read_speedometer", "read_thermometer", "read_tires", "read_user_profile",
	"read_vehicle_info", "read_vin", "control_charge", "control_climate", "control_navigation",
	"control_security", "control_pin", "control_trunk",
}

// incompatibleVIN is the VIN Smartcar's test mode uses for an incompatible vehicle.
const incompatibleVIN = "0SCAUDI012FE3B132"

// SetConnectOutcome makes every Connect session end with o until it is set back to
// OutcomeConsent; a request's sim_outcome parameter takes precedence.
func (s *Simulator) SetConnectOutcome(o Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcome = o
}

// handleAuthorize serves GET /oauth/authorize as an auto-consent page. A request that names an
// unknown client or an unregistered redirect URI gets an error page, never a redirect, as
// Connect cannot trust where it would send the user. Everything else ends in a 302 to the
// redirect URI with code and state, or with error, error_description and state.
//
// Simulator-only parameters: sim_user picks the consenting Smartcar user (default: the one set
// with SetConsentUser, else the first created), sim_outcome picks the outcome.
func (s *Simulator) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	clientID := q.Get("client_id")
	if clientID == "" {
		clientID = q.Get("application_id") // the newest iOS SDK's name for it
	}
	if clientID != s.opts.ClientID {
		connectPage(w, http.StatusBadRequest, "Unknown client_id.")
		return
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" {
		redirectURI = s.opts.RedirectURIs[0]
	}
	target, err := url.Parse(redirectURI)
	if err != nil || !slices.Contains(s.opts.RedirectURIs, redirectURI) {
		connectPage(w, http.StatusBadRequest, "The redirect_uri is not registered for this application.")
		return
	}
	back := func(v url.Values) {
		if st := q.Get("state"); st != "" {
			v.Set("state", st)
		}
		redirect(w, target, v)
	}
	if msg := checkConnectParams(q); msg != "" {
		back(outcomeValues(OutcomeConfigurationError, url.Values{"status_code": {"400"}, "error_message": {msg}}))
		return
	}
	outcome := Outcome(q.Get("sim_outcome"))
	s.mu.Lock()
	if outcome == OutcomeConsent {
		outcome = s.outcome
	}
	s.mu.Unlock()
	switch outcome {
	case OutcomeConsent:
	case OutcomeVehicleIncompatible:
		back(outcomeValues(outcome, url.Values{"vin": {incompatibleVIN}, "make": {"AUDI"}, "model": {"A4"}, "year": {"2017"}}))
		return
	case OutcomeConfigurationError:
		back(outcomeValues(outcome, url.Values{"status_code": {"400"}, "error_message": {"Simulated configuration error."}}))
		return
	default:
		if _, ok := outcomeDescriptions[outcome]; !ok {
			connectPage(w, http.StatusBadRequest, "Unknown sim_outcome.")
			return
		}
		back(outcomeValues(outcome, nil))
		return
	}
	code, err := s.consentCode(q, redirectURI)
	switch {
	case err != nil:
		connectPage(w, http.StatusBadRequest, err.Error())
	case code == "":
		back(outcomeValues(OutcomeNoVehicles, nil))
	default:
		back(url.Values{"code": {code}})
	}
}

// checkConnectParams validates response_type, mode and scope; it returns what is wrong, or "".
func checkConnectParams(q url.Values) string {
	if q.Get("response_type") != "code" {
		return "Invalid response_type; expected code."
	}
	switch q.Get("mode") {
	case "", "live", "test", "simulated":
	default:
		return "Invalid mode."
	}
	for _, sc := range strings.Fields(q.Get("scope")) {
		if !slices.Contains(knownPermissions, strings.TrimPrefix(sc, "required:")) {
			return "Invalid scope: " + sc + "."
		}
	}
	return ""
}

// consentCode lets the chosen user consent and returns a fresh code, or "" when no vehicle of
// theirs matches the request (make, single_select, single_select_vin).
func (s *Simulator) consentCode(q url.Values, redirectURI string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	uid := q.Get("sim_user")
	switch {
	case uid != "":
	case s.consent != "":
		uid = s.consent
	case len(s.order) > 0:
		uid = s.order[0]
	default:
		return "", nil
	}
	u, ok := s.users[uid]
	if !ok {
		return "", errors.New("unknown sim_user")
	}
	var picked []string
	for _, id := range u.vehicles {
		if m := q.Get("make"); m == "" || strings.EqualFold(m, s.vehicles[id].spec.Make) {
			picked = append(picked, id)
		}
	}
	if vin := q.Get("single_select_vin"); vin != "" { // only that car, or none when no car has it
		picked = slices.DeleteFunc(picked, func(id string) bool { return !strings.EqualFold(s.vehicles[id].spec.VIN, vin) })
	}
	if single, _ := strconv.ParseBool(q.Get("single_select")); (single || q.Get("single_select_vin") != "") && len(picked) > 1 {
		picked = picked[:1]
	}
	if len(picked) == 0 {
		return "", nil
	}
	scopes := map[string]bool{}
	fields := strings.Fields(q.Get("scope"))
	if len(fields) == 0 { // Connect falls back to the Dashboard's configuration
		fields = []string{"control_security", "read_security", "read_vehicle_info"}
	}
	for _, sc := range fields {
		scopes[strings.TrimPrefix(sc, "required:")] = true
	}
	code := newUUID()
	s.codes[code] = &authCode{
		grant:       &grant{userID: uid, clientID: s.opts.ClientID, scopes: scopes, vehicles: picked},
		redirectURI: redirectURI,
		expires:     s.now().Add(CodeLifetime),
	}
	return code, nil
}

// outcomeValues is the error redirect's query for o plus extra parameters.
func outcomeValues(o Outcome, extra url.Values) url.Values {
	v := url.Values{"error": {string(o)}, "error_description": {outcomeDescriptions[o]}}
	for k, vs := range extra {
		v[k] = vs
	}
	return v
}

// redirect answers 302 to target with v merged into its query.
func redirect(w http.ResponseWriter, target *url.URL, v url.Values) {
	u := *target
	q := u.Query()
	for k, vs := range v {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Location", u.String())
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusFound)
}

// connectPage is Connect's error page for requests it cannot redirect.
func connectPage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "<!doctype html><title>Smartcar Connect</title><h1>Something went wrong</h1><p>%s</p>\n", html.EscapeString(msg))
}
