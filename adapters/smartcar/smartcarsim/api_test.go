package smartcarsim_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
)

// apiErr is the (status, type, code) of a v2 error answer.
func apiErr(r reply) [3]any { return [3]any{r.status, r.body["type"], r.body["code"]} }

func TestAPIErrorBodyAndRequestIDs(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	r := e.api(t, http.MethodGet, "/v2.0/user", "", "")
	id := r.header.Get("SC-Request-Id")
	want := map[string]any{"type": "AUTHENTICATION", "code": nil, "statusCode": 401.0, "requestId": id,
		"resolution": map[string]any{"type": nil}, "docURL": "https://smartcar.com/docs/errors/api-errors/authentication-errors#null",
		"description":          "The authorization header is missing or malformed, or it contains invalid or expired authentication credentials. Please check for missing parameters, spelling and casing mistakes, and other syntax issues.",
		"suggestedUserMessage": "Your car got disconnected from <app name>. Please use this link to re-connect your car: <link to Smartcar Connect>."}
	if diff := cmp.Diff(r.body, want); r.status != 401 || len(id) != 36 || diff != "" {
		t.Errorf("status %d (-got +want):\n%s", r.status, diff)
	}
	if r := e.api(t, http.MethodGet, "/v2.0/user", "not-a-token", ""); r.status != 401 {
		t.Errorf("unknown token: %d", r.status)
	}
	if diff := cmp.Diff(apiErr(e.api(t, http.MethodGet, "/v2.0/odometer-of-the-moon", "x", "")), [3]any{404, "RESOURCE_NOT_FOUND", "PATH"}); diff != "" {
		t.Errorf("unknown path (-got +want):\n%s", diff)
	}
	// Outside the API's prefix too, an unknown path answers in the v2 shape, and no error body
	// HTML-escapes what Smartcar writes plainly.
	for _, path := range []string{"/", "/v3/vehicles", "/nothing/here"} {
		r := e.api(t, http.MethodGet, path, "x", "")
		if diff := cmp.Diff(apiErr(r), [3]any{404, "RESOURCE_NOT_FOUND", "PATH"}); diff != "" || r.body["suggestedUserMessage"] == "" {
			t.Errorf("unknown path %s (-got +want):\n%s", path, diff)
		}
		if strings.Contains(r.raw, `\u003c`) || !strings.Contains(r.raw, "<app name>") {
			t.Errorf("unknown path %s: body %s, want <app name> unescaped", path, r.raw)
		}
	}
	tok := e.token(t, "/oauth/token", "", "", url.Values{})
	con, _ := e.authorize(t, "client_id", "nobody")
	put := e.api(t, http.MethodPut, "/oauth/token", "", "")
	for name, r := range map[string]reply{"token": tok, "connect page": con, "method not allowed": put} {
		if len(r.header.Get("SC-Request-Id")) != 36 {
			t.Errorf("%s answer has no SC-Request-Id", name)
		}
	}
}

func TestReadEndpoints(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	u, access, _ := e.connect(t)
	for _, path := range []string{"/v2.0/user", "/v2.0/user/"} {
		if r := e.api(t, http.MethodGet, path, access, ""); r.status != 200 || r.body["id"] != u.ID {
			t.Errorf("%s: %d %v", path, r.status, r.body)
		}
	}
	r := e.api(t, http.MethodGet, "/v2.0/vehicles/"+u.VehicleIDs[0], access, "")
	if diff := cmp.Diff(r.body, map[string]any{"id": u.VehicleIDs[0], "make": "TESLA", "model": "Model 3", "year": 2023.0}); diff != "" {
		t.Errorf("attributes (-got +want):\n%s", diff)
	}
	r = e.api(t, http.MethodGet, "/v2.0/vehicles/"+u.VehicleIDs[1]+"/security", access, "")
	if r.status != 200 || r.body["isLocked"] != true || len(r.body["doors"].([]any)) != 4 || len(r.body["chargingPort"].([]any)) != 1 {
		t.Errorf("security: %d %v", r.status, r.body)
	}
	if r.header.Get("SC-Data-Age") != "2026-03-01T09:00:00.000Z" || r.header.Get("SC-Fetched-At") == "" {
		t.Errorf("SC-Data-Age %q, SC-Fetched-At %q", r.header.Get("SC-Data-Age"), r.header.Get("SC-Fetched-At"))
	}
}

func TestVehiclesPaging(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	specs := make([]smartcarsim.VehicleSpec, 23)
	for i := range specs {
		specs[i] = smartcarsim.VehicleSpec{Make: "FORD", Model: "F-150", Year: 2020}
	}
	u := e.sim.CreateUser(specs...)
	_, back := e.authorize(t, "sim_user", u.ID)
	access := e.grant(t, url.Values{"grant_type": {"authorization_code"}, "code": {back.Get("code")}, "redirect_uri": {appRedirect}}).body["access_token"].(string)
	page := func(q string) (int, []any, map[string]any) {
		r := e.api(t, http.MethodGet, "/v2.0/vehicles/"+q, access, "")
		if r.status != 200 {
			return r.status, nil, nil
		}
		return r.status, r.body["vehicles"].([]any), r.body["paging"].(map[string]any)
	}
	ids := make([]any, len(u.VehicleIDs))
	for i, id := range u.VehicleIDs {
		ids[i] = id
	}
	for _, tc := range []struct {
		q      string
		want   []any
		offset float64
	}{
		{"", ids[:10], 0},
		{"?offset=20", ids[20:], 20},
		{"?limit=5&offset=3", ids[3:8], 3},
		{"?limit=50", ids, 0},
		{"?offset=30", []any{}, 30},
	} {
		status, got, paging := page(tc.q)
		if diff := cmp.Diff([]any{status, got, paging}, []any{200, tc.want, map[string]any{"count": 23.0, "offset": tc.offset}}); diff != "" {
			t.Errorf("%q (-got +want):\n%s", tc.q, diff)
		}
	}
	for _, q := range []string{"?limit=0", "?limit=51", "?offset=-1", "?limit=ten"} {
		if r := e.api(t, http.MethodGet, "/v2.0/vehicles"+q, access, ""); !cmp.Equal(apiErr(r), [3]any{400, "VALIDATION", "PARAMETER"}) {
			t.Errorf("%s: %v", q, apiErr(r))
		}
	}
}

func TestSecurityCommand(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	u, access, _ := e.connect(t)
	v := u.VehicleIDs[0]
	path := "/v2.0/vehicles/" + v + "/security"
	r := e.api(t, http.MethodPost, path, access, `{"action":"UNLOCK"}`)
	if diff := cmp.Diff(r.body, map[string]any{"message": "Successfully sent request to vehicle", "status": "success"}); r.status != 200 || diff != "" {
		t.Errorf("unlock: %d (-got +want):\n%s", r.status, diff)
	}
	e.clock.Advance(time.Minute)
	if r := e.api(t, http.MethodPost, path+"/", access, `{"action":"LOCK"}`); r.status != 200 {
		t.Errorf("lock: %d", r.status)
	}
	car, _ := e.sim.Car(v)
	if !car.Locked || car.Commands != 2 || !car.UpdatedAt.Equal(start.Add(time.Minute)) || e.sim.Stats().Commands != 2 {
		t.Errorf("car %+v, commands total %d", car, e.sim.Stats().Commands)
	}
	for _, body := range []string{`{"action":"HONK"}`, `{"action":"lock"}`, `not json`} {
		if diff := cmp.Diff(apiErr(e.api(t, http.MethodPost, path, access, body)), [3]any{400, "VALIDATION", "PARAMETER"}); diff != "" {
			t.Errorf("%s (-got +want):\n%s", body, diff)
		}
	}
	if car, _ := e.sim.Car(v); car.Commands != 2 {
		t.Errorf("refused bodies reached the car: %d", car.Commands)
	}
}

func TestScopesAndDisconnect(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	u, access, _ := e.connect(t, "scope", "read_vehicle_info")
	v := u.VehicleIDs[0]
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if diff := cmp.Diff(apiErr(e.api(t, m, "/v2.0/vehicles/"+v+"/security", access, `{"action":"LOCK"}`)), [3]any{403, "PERMISSION", nil}); diff != "" {
			t.Errorf("%s without the scope (-got +want):\n%s", m, diff)
		}
	}
	r := e.api(t, http.MethodDelete, "/v2.0/vehicles/"+v+"/application", access, "")
	if r.status != 200 || r.body["status"] != "success" {
		t.Errorf("disconnect: %d %v", r.status, r.body)
	}
	if r := e.api(t, http.MethodGet, "/v2.0/vehicles", access, ""); !cmp.Equal(r.body["vehicles"], []any{u.VehicleIDs[1]}) {
		t.Errorf("vehicles after disconnect: %v", r.body["vehicles"])
	}
	if diff := cmp.Diff(apiErr(e.api(t, http.MethodGet, "/v2.0/vehicles/"+v, access, "")), [3]any{403, "PERMISSION", nil}); diff != "" {
		t.Errorf("disconnected vehicle (-got +want):\n%s", diff)
	}
	other := e.sim.CreateUser(smartcarsim.DefaultFleet()...)
	if diff := cmp.Diff(apiErr(e.api(t, http.MethodGet, "/v2.0/vehicles/"+other.VehicleIDs[0], access, "")), [3]any{403, "PERMISSION", nil}); diff != "" {
		t.Errorf("someone else's vehicle (-got +want):\n%s", diff)
	}
	e.clock.Advance(smartcarsim.AccessTokenLifetime)
	if r := e.api(t, http.MethodGet, "/v2.0/user", access, ""); r.status != 401 {
		t.Errorf("access token after 2 h: %d", r.status)
	}
}

// /permissions lists what the owner granted, sorted and paged (paging.count is the total), for
// any vehicle of the grant; /vin needs read_vin.
func TestPermissionsAndVIN(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	u, access, _ := e.connect(t, "scope", "required:control_security read_vehicle_info read_vin")
	v := u.VehicleIDs[0]
	r := e.api(t, http.MethodGet, "/v2.0/vehicles/"+v+"/permissions", access, "")
	want := map[string]any{"permissions": []any{"control_security", "read_vehicle_info", "read_vin"},
		"paging": map[string]any{"count": 3.0, "offset": 0.0}}
	if diff := cmp.Diff(r.body, want); r.status != 200 || diff != "" {
		t.Errorf("permissions: %d (-got +want):\n%s", r.status, diff)
	}
	r = e.api(t, http.MethodGet, "/v2.0/vehicles/"+v+"/permissions?limit=1&offset=1", access, "")
	if diff := cmp.Diff(r.body["permissions"], []any{"read_vehicle_info"}); diff != "" || r.body["paging"].(map[string]any)["count"] != 3.0 {
		t.Errorf("second page (-got +want):\n%s %v", diff, r.body["paging"])
	}
	if r := e.api(t, http.MethodGet, "/v2.0/vehicles/"+v+"/permissions?limit=0", access, ""); r.status != 400 {
		t.Errorf("limit=0: %d, want 400", r.status)
	}
	if r := e.api(t, http.MethodGet, "/v2.0/vehicles/"+v+"/vin", access, ""); r.status != 200 || r.body["vin"] != "5YJ3E1EA7PF000001" {
		t.Errorf("vin: %d %v", r.status, r.body)
	}
	nu, narrow, _ := e.connect(t, "scope", "read_vehicle_info")
	if r := e.api(t, http.MethodGet, "/v2.0/vehicles/"+nu.VehicleIDs[0], narrow, ""); r.status != 200 {
		t.Fatalf("attributes with read_vehicle_info: %d", r.status)
	}
	if diff := cmp.Diff(apiErr(e.api(t, http.MethodGet, "/v2.0/vehicles/"+nu.VehicleIDs[0]+"/vin", narrow, "")), [3]any{403, "PERMISSION", nil}); diff != "" {
		t.Errorf("vin without read_vin (-got +want):\n%s", diff)
	}
	if car, _ := e.sim.Car(e.sim.CreateUser(smartcarsim.VehicleSpec{Make: "BMW"}).VehicleIDs[0]); len(car.Spec.VIN) != 17 {
		t.Errorf("made-up VIN %q, want 17 characters", car.Spec.VIN)
	}
}

func TestConditionsAndRateLimits(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	u, access, _ := e.connect(t)
	v := u.VehicleIDs[0]
	sec := "/v2.0/vehicles/" + v + "/security"
	for _, tc := range []struct {
		c          smartcarsim.Condition
		read, post [3]any
	}{
		{smartcarsim.ConditionAsleep, [3]any{409, "VEHICLE_STATE", "ASLEEP"}, [3]any{409, "VEHICLE_STATE", "ASLEEP"}},
		{smartcarsim.ConditionUnreachable, [3]any{409, "VEHICLE_STATE", "UNREACHABLE"}, [3]any{409, "VEHICLE_STATE", "UNREACHABLE"}},
		{smartcarsim.ConditionDriving, [3]any{200, nil, nil}, [3]any{409, "VEHICLE_STATE", "IN_MOTION"}},
	} {
		if err := e.sim.SetCondition(v, tc.c); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([][3]any{apiErr(e.api(t, http.MethodGet, sec, access, "")), apiErr(e.api(t, http.MethodPost, sec, access, `{"action":"UNLOCK"}`))},
			[][3]any{tc.read, tc.post}); diff != "" {
			t.Errorf("%s (-got +want):\n%s", tc.c, diff)
		}
		if r := e.api(t, http.MethodGet, "/v2.0/vehicles/"+v, access, ""); r.status != 200 {
			t.Errorf("%s: attributes %d", tc.c, r.status)
		}
	}
	if car, _ := e.sim.Car(v); car.Commands != 0 || !car.Locked {
		t.Errorf("refused commands reached the car: %+v", car)
	}
	_ = e.sim.SetCondition(v, smartcarsim.ConditionParked)
	if err := e.sim.RateLimit(v, 120*time.Second); err != nil {
		t.Fatal(err)
	}
	r := e.api(t, http.MethodGet, sec, access, "")
	if diff := cmp.Diff(apiErr(r), [3]any{429, "RATE_LIMIT", "VEHICLE"}); diff != "" || r.header.Get("Retry-After") != "120" {
		t.Errorf("rate limited: Retry-After %q (-got +want):\n%s", r.header.Get("Retry-After"), diff)
	}
	e.clock.Advance(100 * time.Second)
	if r := e.api(t, http.MethodPost, sec, access, `{"action":"LOCK"}`); r.header.Get("Retry-After") != "20" {
		t.Errorf("Retry-After later = %q, want 20", r.header.Get("Retry-After"))
	}
	e.clock.Advance(20 * time.Second)
	if r := e.api(t, http.MethodPost, sec, access, `{"action":"LOCK"}`); r.status != 200 {
		t.Errorf("after the limit: %d", r.status)
	}
	for _, err := range []error{e.sim.SetCondition("nope", smartcarsim.ConditionAsleep), e.sim.RateLimit("nope", 1), e.sim.SetLocked("nope", true), e.sim.RevokeConsent("nobody")} {
		if err == nil {
			t.Error("a switch accepted an unknown id")
		}
	}
}

func TestFaults(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	u, access, rt := e.connect(t)
	sec := "/v2.0/vehicles/" + u.VehicleIDs[0] + "/security"
	fired := make(chan smartcarsim.Endpoint, 4)
	e.sim.SetFault(smartcarsim.EndpointSecurity, smartcarsim.Fault{Status: 500, Times: 1, Fired: fired})
	if diff := cmp.Diff(apiErr(e.api(t, http.MethodPost, sec, access, `{"action":"UNLOCK"}`)), [3]any{500, "SERVER", "INTERNAL"}); diff != "" {
		t.Errorf("500 (-got +want):\n%s", diff)
	}
	if ep := <-fired; ep != smartcarsim.EndpointSecurity {
		t.Errorf("fired %q", ep)
	}
	if r := e.api(t, http.MethodGet, sec, access, ""); r.status != 200 || r.body["isLocked"] != true {
		t.Errorf("fault struck the wrong endpoint or the effect ran: %d %v", r.status, r.body)
	}
	e.sim.SetFault(smartcarsim.EndpointSecurity, smartcarsim.Fault{Status: 502, AfterEffect: true, Times: 1})
	if diff := cmp.Diff(apiErr(e.api(t, http.MethodPost, sec, access, `{"action":"UNLOCK"}`)), [3]any{502, "UPSTREAM", "UNKNOWN_ISSUE"}); diff != "" {
		t.Errorf("502 after effect (-got +want):\n%s", diff)
	}
	if car, _ := e.sim.Car(u.VehicleIDs[0]); car.Locked || car.Commands != 1 {
		t.Errorf("after-effect fault: %+v, want the unlock executed", car)
	}
	e.sim.SetFault(smartcarsim.EndpointAll, smartcarsim.Fault{Type: "VEHICLE_STATE", Code: "DOOR_OPEN"})
	if diff := cmp.Diff(apiErr(e.api(t, http.MethodGet, "/v2.0/user", access, "")), [3]any{409, "VEHICLE_STATE", "DOOR_OPEN"}); diff != "" {
		t.Errorf("global typed fault (-got +want):\n%s", diff)
	}
	e.sim.ClearFaults()
	e.sim.SetFault(smartcarsim.EndpointVehicles, smartcarsim.Fault{Status: 503, RetryAfter: 30 * time.Second})
	r := e.api(t, http.MethodGet, "/v2.0/vehicles", access, "")
	if r.status != 503 || r.body != nil || r.header.Get("Retry-After") != "30" {
		t.Errorf("503: %d %q Retry-After %q", r.status, r.raw, r.header.Get("Retry-After"))
	}
	e.sim.SetFault(smartcarsim.EndpointToken, smartcarsim.Fault{Status: 500, Times: 1})
	if diff := cmp.Diff(oauthErr(e.grant(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})), [2]any{500, "server_error"}); diff != "" {
		t.Errorf("token fault (-got +want):\n%s", diff)
	}
	// Not limited by Times: Go's transport retries an idempotent GET once on a reused connection.
	e.sim.SetFault(smartcarsim.EndpointUser, smartcarsim.Fault{Drop: true})
	req, _ := http.NewRequest(http.MethodGet, e.base+"/v2.0/user", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		_ = resp.Body.Close()
		t.Errorf("drop: got an answer %d", resp.StatusCode)
	}
}

func TestHangUntilClientGivesUpOrClose(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	u, access, _ := e.connect(t)
	fired := make(chan smartcarsim.Endpoint, 1)
	e.sim.SetFault(smartcarsim.EndpointSecurity, smartcarsim.Fault{Hang: true, AfterEffect: true, Fired: fired})
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/v2.0/vehicles/"+u.VehicleIDs[0]+"/security", stringsReader(`{"action":"UNLOCK"}`))
	req.Header.Set("Authorization", "Bearer "+access)
	go func() { <-fired; cancel() }()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("hang answered %d", resp.StatusCode)
	}
	if car, _ := e.sim.Car(u.VehicleIDs[0]); car.Locked {
		t.Error("the hanging command did not execute first")
	}
	go func() { <-fired; e.sim.Close() }()
	r := e.api(t, http.MethodPost, "/v2.0/vehicles/"+u.VehicleIDs[0]+"/security", access, `{"action":"LOCK"}`)
	if r.status != 503 {
		t.Errorf("after Close: %d, want the held request released with 503", r.status)
	}
}

func TestLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim, err := smartcarsim.New(smartcarsim.Options{RedirectURIs: []string{appRedirect}})
		if err != nil {
			t.Fatal(err)
		}
		defer sim.Close()
		sim.SetLatency(smartcarsim.EndpointAll, 3*time.Second)
		sim.SetLatency(smartcarsim.EndpointUser, 40*time.Second)
		serve := func(path string, timeout time.Duration) (time.Duration, int) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil)
			rec := httptest.NewRecorder()
			began := time.Now()
			sim.Handler().ServeHTTP(rec, req)
			return time.Since(began), rec.Code
		}
		got := [][2]any{}
		for _, c := range []struct {
			path    string
			timeout time.Duration
		}{{"/v2.0/user", time.Hour}, {"/v2.0/vehicles", time.Hour}, {"/v2.0/user", 5 * time.Second}} {
			d, code := serve(c.path, c.timeout)
			got = append(got, [2]any{d, code})
		}
		want := [][2]any{{40 * time.Second, 401}, {3 * time.Second, 401}, {5 * time.Second, 200}}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("durations and codes (-got +want):\n%s", diff)
		}
		if n := sim.Stats().APIRequests; n != 3 {
			t.Errorf("api requests = %s", strconv.FormatInt(n, 10))
		}
	})
}
