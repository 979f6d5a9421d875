package smartcar

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/betterkey/backend/domain"
)

// maxRetryAfter caps an upstream Retry-After, so a bogus header cannot park a vehicle for days.
const maxRetryAfter = 24 * time.Hour

// class is what one upstream failure means to us.
type class struct {
	err       *domain.Error
	temporary bool
	// maybe marks failures that do not prove the request was dropped; it sets MayHaveExecuted
	// for calls with effects.
	maybe bool
}

// errorBody is the union of Smartcar's v2 error object and the OAuth error object, reduced to
// the fields classification needs. description and error_description are never read: Smartcar
// echoes codes and refresh tokens in them.
type errorBody struct {
	Type      string  `json:"type"`
	Code      *string `json:"code"`
	RequestID string  `json:"requestId"`
	OAuth     string  `json:"error"`
}

// statusError classifies a non-2xx answer.
func (c *Client) statusError(k call, r *response) *domain.UpstreamError {
	var b errorBody
	_ = json.Unmarshal(r.body, &b) // a body that is not JSON is classified by its status
	e := &domain.UpstreamError{Op: k.op, Status: r.status, RequestID: r.requestID,
		RetryAfter: retryAfter(r.header.Get("Retry-After"), c.now())}
	if e.RequestID == "" {
		e.RequestID = identifier(b.RequestID)
	}
	var cl class
	switch {
	case k.oauth:
		e.Type, e.Code = "oauth", identifier(b.OAuth)
		cl = oauthClass(k, e.Code, r.status)
	default:
		e.Type = identifier(b.Type)
		if b.Code != nil {
			e.Code = identifier(*b.Code)
		}
		cl = apiClass(e.Type, e.Code, r.status)
	}
	e.Err, e.Transient, e.PossiblyExecuted = cl.err, cl.temporary, cl.maybe && k.effectful
	return e
}

// apiClass applies the reference's error table (§3.2) and falls back on the status for answers
// without a recognisable body (a proxy's 502 page, an unknown type).
func apiClass(typ, code string, status int) class {
	switch typ {
	case "AUTHENTICATION":
		return class{err: domain.ErrReauthRequired}
	case "PERMISSION":
		return class{err: domain.ErrConsentRevoked}
	case "CONNECTED_SERVICES_ACCOUNT":
		if code == "AUTHENTICATION_FAILED" || code == "PERMISSION" {
			return class{err: domain.ErrReauthRequired}
		}
		return class{err: domain.ErrOwnerActionRequired}
	case "RATE_LIMIT":
		return class{err: domain.ErrRateLimited, temporary: true}
	case "VEHICLE_STATE":
		return vehicleStateClass(code)
	case "COMPATIBILITY":
		return class{err: domain.ErrNotCapable}
	case "BILLING":
		if code == "VEHICLE_REQUEST_LIMIT" {
			return class{err: domain.ErrRateLimited}
		}
		return class{err: domain.ErrUpstreamUnavailable}
	case "UPSTREAM":
		if code == "RATE_LIMIT" {
			return class{err: domain.ErrRateLimited, temporary: true}
		}
		return class{err: domain.ErrUpstreamUnavailable, temporary: true, maybe: status != http.StatusServiceUnavailable}
	case "SERVER":
		return class{err: domain.ErrUpstreamUnavailable, temporary: true, maybe: status != http.StatusServiceUnavailable}
	case "VALIDATION", "RESOURCE_NOT_FOUND":
		return class{err: domain.ErrUpstreamRejected}
	}
	return statusClass(status)
}

// vehicleStateClass maps VEHICLE_STATE codes (409). The vehicle refused, so nothing ran, except
// UNKNOWN, which does not say how far the request got.
func vehicleStateClass(code string) class {
	switch code {
	case "ASLEEP":
		return class{err: domain.ErrVehicleAsleep, temporary: true}
	case "UNREACHABLE", "VEHICLE_OFFLINE_FOR_SERVICE":
		return class{err: domain.ErrVehicleUnreachable, temporary: true}
	case "IN_MOTION":
		return class{err: domain.ErrVehicleInMotion, temporary: true}
	case "UNKNOWN":
		return class{err: domain.ErrVehicleNotReady, temporary: true, maybe: true}
	case "LOW_BATTERY", "IGNITION_ON":
		return class{err: domain.ErrVehicleNotReady, temporary: true}
	}
	return class{err: domain.ErrVehicleNotReady}
}

// statusClass classifies by HTTP status alone.
func statusClass(status int) class {
	switch {
	case status == http.StatusUnauthorized:
		return class{err: domain.ErrReauthRequired}
	case status == http.StatusForbidden:
		return class{err: domain.ErrConsentRevoked}
	case status == http.StatusConflict:
		return class{err: domain.ErrVehicleNotReady}
	case status == http.StatusTooManyRequests:
		return class{err: domain.ErrRateLimited, temporary: true}
	case status == 430: // Smartcar's BILLING status
		return class{err: domain.ErrUpstreamUnavailable}
	case status == http.StatusNotImplemented:
		return class{err: domain.ErrNotCapable}
	case status == http.StatusServiceUnavailable:
		return class{err: domain.ErrUpstreamUnavailable, temporary: true}
	case status >= 500:
		return class{err: domain.ErrUpstreamUnavailable, temporary: true, maybe: true}
	}
	return class{err: domain.ErrUpstreamRejected}
}

// oauthClass maps token-endpoint errors. Smartcar answers a bad code with invalid_request and a
// dead refresh token with an error whose name is not documented, so any client-side refusal of
// a grant counts as a dead grant; only errors about the client itself are our misconfiguration.
func oauthClass(k call, oauthErr string, status int) class {
	if status >= 500 || status == http.StatusTooManyRequests {
		return statusClass(status)
	}
	if k.appToken { // no user grant is involved: any refusal is about our own credentials
		return class{err: domain.ErrUpstreamRejected}
	}
	switch oauthErr {
	case "invalid_client", "unauthorized_client", "unsupported_grant_type", "invalid_scope":
		return class{err: domain.ErrUpstreamRejected}
	case "":
		if status == http.StatusUnauthorized || status/100 != 4 {
			return class{err: domain.ErrUpstreamRejected}
		}
	}
	if k.refresh {
		return class{err: domain.ErrReauthRequired}
	}
	return class{err: domain.ErrConnectCodeInvalid}
}

// transportError classifies a call that got no answer. Whether the request was written decides
// MayHaveExecuted: a refused connection or a failed DNS lookup proves nothing was sent.
func transportError(k call, err error, wrote bool) *domain.UpstreamError {
	e := &domain.UpstreamError{Err: domain.ErrUpstreamUnavailable, Op: k.op, Transient: true,
		PossiblyExecuted: wrote && k.effectful, Cause: err}
	var ne net.Error
	switch {
	case errors.Is(err, errOffHostRedirect):
		e.Err, e.Transient = domain.ErrUpstreamRejected, false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.As(err, &ne) && ne.Timeout():
		e.Err = domain.ErrUpstreamTimeout
	}
	return e
}

// retryAfter reads Retry-After as delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		d = time.Duration(min(s, int64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now).Round(time.Second)
	}
	return max(0, min(d, maxRetryAfter))
}

// identifier keeps an upstream error name only when it looks like one (letters, digits, _ and -,
// at most 64), so nothing the upstream echoes, a token least of all, reaches a log line.
func identifier(s string) string {
	if len(s) > 64 {
		return "?"
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return "?"
		}
	}
	return s
}
