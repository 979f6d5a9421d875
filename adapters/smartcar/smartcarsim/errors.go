package smartcarsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// statusByType is the v2 error table's HTTP status per type (reference §3.2).
var statusByType = map[string]int{
	"AUTHENTICATION":             http.StatusUnauthorized,
	"BILLING":                    430,
	"COMPATIBILITY":              http.StatusNotImplemented,
	"CONNECTED_SERVICES_ACCOUNT": http.StatusBadRequest,
	"PERMISSION":                 http.StatusForbidden,
	"RATE_LIMIT":                 http.StatusTooManyRequests,
	"RESOURCE_NOT_FOUND":         http.StatusNotFound,
	"SERVER":                     http.StatusInternalServerError,
	"UPSTREAM":                   http.StatusBadGateway,
	"VALIDATION":                 http.StatusBadRequest,
	"VEHICLE_STATE":              http.StatusConflict,
}

// typeByStatus picks the type and code a bare status stands for.
func typeByStatus(status int) (string, string) {
	switch status {
	case http.StatusUnauthorized:
		return "AUTHENTICATION", ""
	case http.StatusForbidden:
		return "PERMISSION", ""
	case http.StatusNotFound:
		return "RESOURCE_NOT_FOUND", "PATH"
	case http.StatusConflict:
		return "VEHICLE_STATE", "UNKNOWN"
	case http.StatusTooManyRequests:
		return "RATE_LIMIT", "SMARTCAR_API"
	case 430:
		return "BILLING", "VEHICLE_REQUEST_LIMIT"
	case http.StatusNotImplemented:
		return "COMPATIBILITY", "VEHICLE_NOT_CAPABLE"
	case http.StatusBadGateway:
		return "UPSTREAM", "UNKNOWN_ISSUE"
	case http.StatusBadRequest:
		return "VALIDATION", "PARAMETER"
	}
	return "SERVER", "INTERNAL"
}

// descriptions are the documented texts where the reference quotes them; the rest are ours.
var descriptions = map[string]string{
	"RATE_LIMIT:VEHICLE":                               "You have reached the throttling rate limit for this vehicle. Please see the retry-after header for when to retry the request.",
	"AUTHENTICATION:":                                  "The authorization header is missing or malformed, or it contains invalid or expired authentication credentials. Please check for missing parameters, spelling and casing mistakes, and other syntax issues.",
	"PERMISSION:":                                      "Your application has insufficient permissions to access the requested resource. Please prompt the user to re-authenticate using Smartcar Connect.",
	"VEHICLE_STATE:ASLEEP":                             "The vehicle is in a sleep state and temporarily unable to perform your request.",
	"VEHICLE_STATE:UNREACHABLE":                        "The vehicle was unable to perform your request because it is currently unreachable.",
	"VEHICLE_STATE:IN_MOTION":                          "The vehicle was unable to perform your request because it is currently in motion.",
	"CONNECTED_SERVICES_ACCOUNT:AUTHENTICATION_FAILED": "Smartcar was unable to authenticate with the user’s connected services account. Please prompt the user to re-authenticate using Smartcar Connect.",
}

// userMessages are the suggestedUserMessage texts Smartcar sends (reference §3.1), per type:code,
// else per type, with <app name> as Smartcar writes it; every error carries one.
var userMessages = map[string]string{
	"RATE_LIMIT":                 "Your vehicle is temporarily unable to connect to <app name>. Please be patient while we’re working to resolve this issue.",
	"VEHICLE_STATE:ASLEEP":       "Your vehicle is in a sleep state. This request was not sent to preserve battery life. ",
	"VEHICLE_STATE":              "Your vehicle is temporarily unable to connect to <app name>. Please be patient while we’re working to resolve this issue.",
	"CONNECTED_SERVICES_ACCOUNT": "Your car got disconnected from <app name>. Please use this link to re-connect your car: <link to Smartcar Connect>.",
	"PERMISSION":                 "Your car got disconnected from <app name>. Please use this link to re-connect your car: <link to Smartcar Connect>.",
	"AUTHENTICATION":             "Your car got disconnected from <app name>. Please use this link to re-connect your car: <link to Smartcar Connect>.",
	"COMPATIBILITY":              "Your vehicle doesn’t support this feature of <app name>.",
}

// defaultUserMessage is the suggestedUserMessage of the errors userMessages does not name.
const defaultUserMessage = "<app name> is temporarily unable to reach your vehicle. Please try again later."

// resolutions are the documented resolution types per type:code, else per type.
var resolutions = map[string]string{
	"RATE_LIMIT": "RETRY_LATER", "UPSTREAM": "RETRY_LATER", "SERVER:INTERNAL": "RETRY_LATER",
	"VEHICLE_STATE:UNKNOWN": "RETRY_LATER", "VEHICLE_STATE:LOW_BATTERY": "RETRY_LATER",
	"PERMISSION": "REAUTHENTICATE", "CONNECTED_SERVICES_ACCOUNT:AUTHENTICATION_FAILED": "REAUTHENTICATE",
	"CONNECTED_SERVICES_ACCOUNT:PERMISSION": "REAUTHENTICATE",
	"SERVER:RECORD_NOT_FOUND":               "CONTACT_SUPPORT", "SERVER:MULTIPLE_RECORDS_FOUND": "CONTACT_SUPPORT",
	"CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED": "ACTION_REQUIRED",
}

// apiError is the v2 error body (reference §3.1).
type apiError struct {
	Type                 string         `json:"type"`
	Code                 *string        `json:"code"`
	Description          string         `json:"description"`
	DocURL               string         `json:"docURL"`
	StatusCode           int            `json:"statusCode"`
	RequestID            string         `json:"requestId"`
	Resolution           map[string]any `json:"resolution"`
	SuggestedUserMessage string         `json:"suggestedUserMessage,omitempty"`
}

// writeAPIError writes a v2 error. Missing status, type or code are derived from each other;
// 503 and 504 without a type answer with a plain-text body, as a load balancer would.
func writeAPIError(w http.ResponseWriter, status int, typ, code string, retryAfter time.Duration) {
	if status == 0 {
		status = statusByType[typ]
		if status == 0 {
			status = http.StatusInternalServerError
		}
	}
	setRetryAfter(w, retryAfter)
	if typ == "" && (status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(http.StatusText(status) + "\n"))
		return
	}
	if typ == "" {
		typ, code = typeByStatus(status)
	}
	e := apiError{Type: typ, StatusCode: status, RequestID: w.Header().Get("SC-Request-Id"),
		Description: descriptions[typ+":"+code], Resolution: map[string]any{"type": nil}}
	if e.Description == "" {
		e.Description = "The simulated vehicle service refused the request (" + typ + ")."
	}
	if code != "" {
		e.Code = &code
	}
	anchor := "null"
	if code != "" {
		anchor = strings.ToLower(strings.ReplaceAll(code, "_", "-"))
	}
	e.DocURL = "https://smartcar.com/docs/errors/api-errors/" + strings.ToLower(strings.ReplaceAll(typ, "_", "-")) + "-errors#" + anchor
	e.SuggestedUserMessage = defaultUserMessage
	if m, ok := userMessages[typ+":"+code]; ok {
		e.SuggestedUserMessage = m
	} else if m, ok := userMessages[typ]; ok {
		e.SuggestedUserMessage = m
	}
	if r, ok := resolutions[typ+":"+code]; ok {
		e.Resolution["type"] = r
	} else if r, ok := resolutions[typ]; ok {
		e.Resolution["type"] = r
	}
	writeJSON(w, status, e)
}

// writeOAuthError writes the token endpoint's error body.
func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="smartcar"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	if d > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
	}
}

// writeJSON writes v as Smartcar does: without Go's HTML escaping, so "<app name>" reads as it
// is written.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// marshal is json.Marshal without HTML escaping: a verifier that re-serialises a payload, as
// Smartcar's SDK helpers do, must come to the bytes that were signed.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
