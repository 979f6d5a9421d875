package smartcar_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/smartcar"
	"github.com/betterkey/backend/domain"
)

// canned answers one fixed response and counts requests.
func canned(t *testing.T, status int, header map[string]string, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// v2 renders a v2 error body as Smartcar sends it, with an echo a careless client would log.
func v2(typ, code string, status int) string {
	c := "null"
	if code != "" {
		c = `"` + code + `"`
	}
	return `{"type":"` + typ + `","code":` + c + `,"description":"secret-echo ACCESS-CANARY","docURL":"https://smartcar.com/docs",` +
		`"statusCode":` + strconv.Itoa(status) + `,"requestId":"body-request-id","resolution":{"type":null}}`
}

// outcome is the classification a test expects.
type outcome struct {
	Err              string
	Temporary, Maybe bool
	RetryAfter       time.Duration
	RequestID        string
	Type, Code       string
	Status           int
}

func outcomeOf(t *testing.T, err error) outcome {
	t.Helper()
	u := domain.AsUpstream(err)
	if u == nil {
		t.Fatalf("error %v is not an UpstreamError", err)
	}
	return outcome{Err: u.Err.Code, Temporary: u.Temporary(), Maybe: u.MayHaveExecuted(), RetryAfter: u.RetryAfter,
		RequestID: u.RequestID, Type: u.Type, Code: u.Code, Status: u.Status}
}

func TestAPIErrorClassification(t *testing.T) {
	hdr := map[string]string{"SC-Request-Id": "hdr-request-id"}
	for _, tc := range []struct {
		name   string
		status int
		header map[string]string
		body   string
		// command is the outcome for POST /security; the read of GET /security differs only in Maybe.
		command outcome
	}{
		{"rate limit vehicle", 429, map[string]string{"SC-Request-Id": "hdr-request-id", "Retry-After": "120"}, v2("RATE_LIMIT", "VEHICLE", 429),
			outcome{Err: "RATE_LIMITED", Temporary: true, RetryAfter: 120 * time.Second, Type: "RATE_LIMIT", Code: "VEHICLE"}},
		{"authentication", 401, hdr, v2("AUTHENTICATION", "", 401), outcome{Err: "REAUTH_REQUIRED", Type: "AUTHENTICATION"}},
		{"permission", 403, hdr, v2("PERMISSION", "", 403), outcome{Err: "CONSENT_REVOKED", Type: "PERMISSION"}},
		{"asleep", 409, hdr, v2("VEHICLE_STATE", "ASLEEP", 409), outcome{Err: "VEHICLE_ASLEEP", Temporary: true, Type: "VEHICLE_STATE", Code: "ASLEEP"}},
		{"unreachable", 409, hdr, v2("VEHICLE_STATE", "UNREACHABLE", 409), outcome{Err: "VEHICLE_UNREACHABLE", Temporary: true, Type: "VEHICLE_STATE", Code: "UNREACHABLE"}},
		{"in motion", 409, hdr, v2("VEHICLE_STATE", "IN_MOTION", 409), outcome{Err: "VEHICLE_IN_MOTION", Temporary: true, Type: "VEHICLE_STATE", Code: "IN_MOTION"}},
		{"door open", 409, hdr, v2("VEHICLE_STATE", "DOOR_OPEN", 409), outcome{Err: "VEHICLE_NOT_READY", Type: "VEHICLE_STATE", Code: "DOOR_OPEN"}},
		{"vehicle state unknown", 409, hdr, v2("VEHICLE_STATE", "UNKNOWN", 409), outcome{Err: "VEHICLE_NOT_READY", Temporary: true, Maybe: true, Type: "VEHICLE_STATE", Code: "UNKNOWN"}},
		{"account auth failed", 400, hdr, v2("CONNECTED_SERVICES_ACCOUNT", "AUTHENTICATION_FAILED", 400), outcome{Err: "REAUTH_REQUIRED", Type: "CONNECTED_SERVICES_ACCOUNT", Code: "AUTHENTICATION_FAILED"}},
		{"virtual key", 400, hdr, v2("CONNECTED_SERVICES_ACCOUNT", "VIRTUAL_KEY_REQUIRED", 400), outcome{Err: "OWNER_ACTION_REQUIRED", Type: "CONNECTED_SERVICES_ACCOUNT", Code: "VIRTUAL_KEY_REQUIRED"}},
		{"not capable", 501, hdr, v2("COMPATIBILITY", "VEHICLE_NOT_CAPABLE", 501), outcome{Err: "NOT_CAPABLE", Type: "COMPATIBILITY", Code: "VEHICLE_NOT_CAPABLE"}},
		{"monthly cap", 430, hdr, v2("BILLING", "VEHICLE_REQUEST_LIMIT", 430), outcome{Err: "RATE_LIMITED", Type: "BILLING", Code: "VEHICLE_REQUEST_LIMIT"}},
		{"oem rate limit", 502, hdr, v2("UPSTREAM", "RATE_LIMIT", 502), outcome{Err: "RATE_LIMITED", Temporary: true, Type: "UPSTREAM", Code: "RATE_LIMIT"}},
		{"oem no response", 502, hdr, v2("UPSTREAM", "NO_RESPONSE", 502), outcome{Err: "UPSTREAM_UNAVAILABLE", Temporary: true, Maybe: true, Type: "UPSTREAM", Code: "NO_RESPONSE"}},
		{"server internal", 500, hdr, v2("SERVER", "INTERNAL", 500), outcome{Err: "UPSTREAM_UNAVAILABLE", Temporary: true, Maybe: true, Type: "SERVER", Code: "INTERNAL"}},
		{"validation", 400, hdr, v2("VALIDATION", "PARAMETER", 400), outcome{Err: "UPSTREAM_REJECTED", Type: "VALIDATION", Code: "PARAMETER"}},
		{"plain 503", 503, hdr, "Service Unavailable", outcome{Err: "UPSTREAM_UNAVAILABLE", Temporary: true}},
		{"html 504", 504, hdr, "<html>gateway timeout</html>", outcome{Err: "UPSTREAM_UNAVAILABLE", Temporary: true, Maybe: true}},
		{"unknown 418", 418, hdr, "", outcome{Err: "UPSTREAM_REJECTED"}},
		{"request id from body", 409, nil, v2("VEHICLE_STATE", "ASLEEP", 409), outcome{Err: "VEHICLE_ASLEEP", Temporary: true, Type: "VEHICLE_STATE", Code: "ASLEEP", RequestID: "body-request-id"}},
		{"garbage type", 409, hdr, `{"type":"ACCESS CANARY 123","code":"x y"}`, outcome{Err: "VEHICLE_NOT_READY", Type: "?", Code: "?"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, canned(t, tc.status, tc.header, tc.body), nil)
			access := domain.NewSecret("ACCESS-CANARY")
			want := tc.command
			want.Status = tc.status
			if want.RequestID == "" && tc.header != nil {
				want.RequestID = "hdr-request-id"
			}
			_, err := c.Security(t.Context(), domain.VehicleGrant{Access: access}, "veh-1", domain.SecurityLock)
			if diff := cmp.Diff(outcomeOf(t, err), want); diff != "" {
				t.Errorf("command (-got +want):\n%s", diff)
			}
			if strings.Contains(err.Error(), "CANARY") || strings.Contains(err.Error(), "secret-echo") {
				t.Errorf("error text carries the upstream body or a token: %v", err)
			}
			_, err = c.LockStatus(t.Context(), domain.VehicleGrant{Access: access}, "veh-1")
			want.Maybe = false
			if diff := cmp.Diff(outcomeOf(t, err), want); diff != "" {
				t.Errorf("read (-got +want):\n%s", diff)
			}
		})
	}
}

func TestRetryAfterAsHTTPDate(t *testing.T) {
	at := time.Now().Add(3 * time.Minute).UTC().Format(http.TimeFormat)
	c := newClient(t, canned(t, 429, map[string]string{"Retry-After": at}, v2("RATE_LIMIT", "VEHICLE", 429)), nil)
	_, err := c.LockStatus(t.Context(), domain.VehicleGrant{Access: domain.NewSecret("a")}, "v")
	if d := outcomeOf(t, err).RetryAfter; d < 2*time.Minute || d > 3*time.Minute {
		t.Errorf("RetryAfter = %v, want about 3m", d)
	}
}

func TestOAuthErrorClassification(t *testing.T) {
	const refresh = "REFRESH-CANARY-0d9e"
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		refresh bool
		want    outcome
	}{
		{"bad code", 400, `{"error":"invalid_request","error_description":"Invalid code: ` + refresh + `."}`, false,
			outcome{Err: "CONNECT_CODE_INVALID", Type: "oauth", Code: "invalid_request"}},
		{"dead refresh (invalid_grant)", 400, `{"error":"invalid_grant","error_description":"Invalid refresh_token: ` + refresh + `."}`, true,
			outcome{Err: "REAUTH_REQUIRED", Type: "oauth", Code: "invalid_grant"}},
		{"dead refresh (invalid_request)", 400, `{"error":"invalid_request","error_description":"Invalid refresh_token: ` + refresh + `."}`, true,
			outcome{Err: "REAUTH_REQUIRED", Type: "oauth", Code: "invalid_request"}},
		{"client rejected", 401, `{"error":"invalid_client","error_description":"Invalid client credentials."}`, true,
			outcome{Err: "UPSTREAM_REJECTED", Type: "oauth", Code: "invalid_client"}},
		{"bare 401", 401, ``, false, outcome{Err: "UPSTREAM_REJECTED", Type: "oauth"}},
		{"server error", 500, `{"error":"server_error"}`, true, outcome{Err: "UPSTREAM_UNAVAILABLE", Type: "oauth", Code: "server_error", Temporary: true, Maybe: true}},
		{"unavailable", 503, `busy`, true, outcome{Err: "UPSTREAM_UNAVAILABLE", Type: "oauth", Temporary: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, canned(t, tc.status, nil, tc.body), nil)
			var err error
			if tc.refresh {
				_, err = c.Refresh(t.Context(), domain.NewSecret(refresh))
			} else {
				_, err = c.ExchangeCode(t.Context(), domain.NewSecret(refresh))
			}
			want := tc.want
			want.Status = tc.status
			if diff := cmp.Diff(outcomeOf(t, err), want); diff != "" {
				t.Errorf("(-got +want):\n%s", diff)
			}
			if strings.Contains(err.Error(), refresh) {
				t.Errorf("error text carries the token: %v", err)
			}
		})
	}
}

func TestMalformedSuccessAnswers(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		call func(*smartcar.Client) error
	}{
		{"token without refresh token", `{"access_token":"a","token_type":"Bearer","expires_in":7200}`, func(c *smartcar.Client) error {
			_, err := c.Refresh(t.Context(), domain.NewSecret("r"))
			return err
		}},
		{"token not json", `<html>`, func(c *smartcar.Client) error {
			_, err := c.ExchangeCode(t.Context(), domain.NewSecret("c"))
			return err
		}},
		{"user without id", `{}`, func(c *smartcar.Client) error {
			_, err := c.User(t.Context(), domain.NewSecret("a"))
			return err
		}},
		{"attributes of another vehicle", `{"id":"other","make":"TESLA","model":"S","year":2014}`, func(c *smartcar.Client) error {
			_, err := c.Attributes(t.Context(), domain.VehicleGrant{Access: domain.NewSecret("a")}, "v")
			return err
		}},
		{"command reported failed", `{"status":"FAILED"}`, func(c *smartcar.Client) error {
			_, err := c.Security(t.Context(), domain.VehicleGrant{Access: domain.NewSecret("a")}, "v", domain.SecurityLock)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(newClient(t, canned(t, 200, nil, tc.body), nil))
			if !errors.Is(err, domain.ErrUpstreamUnavailable) {
				t.Errorf("err = %v, want UPSTREAM_UNAVAILABLE", err)
			}
		})
	}
}
