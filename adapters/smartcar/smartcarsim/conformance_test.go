package smartcarsim_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
)

// keys lists a JSON object's member names, sorted.
func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

// v2ErrorFields are the members of every v2 error body (reference §3.1).
var v2ErrorFields = []string{"code", "description", "docURL", "requestId", "resolution", "statusCode", "suggestedUserMessage", "type"}

// TestConformance holds every endpoint the adapters call to the shapes shared/reference/
// smartcar-api.md documents: status, JSON content type, an SC-Request-Id of 36 characters, the
// exact member names of the answer, and the error body of a refusal.
func TestConformance(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	u, access, refresh := e.connect(t)
	vid := u.VehicleIDs[0]
	app := e.token(t, "/oauth2/token", "", "", url.Values{"grant_type": {"client_credentials"},
		"client_id": {e.sim.ClientID()}, "client_secret": {e.sim.ClientSecret()}})
	appToken, _ := app.body["access_token"].(string)
	v3 := func(method, path string) reply {
		req, _ := http.NewRequest(method, e.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+appToken)
		req.Header.Set("sc-user-id", u.ID)
		return do(t, req)
	}
	amt := "Basic " + base64.StdEncoding.EncodeToString([]byte("default:"+e.sim.ManagementToken()))
	management := func(q url.Values, auth string) reply {
		req, _ := http.NewRequest(http.MethodDelete, e.base+"/v2.0/management/connections?"+q.Encode(), nil)
		req.Header.Set("Authorization", auth)
		return do(t, req)
	}
	for _, tc := range []struct {
		name   string
		r      func() reply
		status int
		fields []string
	}{
		{"token: refresh_token grant", func() reply {
			return e.grant(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
		}, 200, []string{"access_token", "expires_in", "refresh_token", "token_type"}},
		{"token: client_credentials grant", func() reply { return app }, 200, []string{"access_token", "expires_in", "token_type"}},
		{"v2 user", func() reply { return e.api(t, "GET", "/v2.0/user", access, "") }, 200, []string{"id"}},
		{"v2 vehicles", func() reply { return e.api(t, "GET", "/v2.0/vehicles", access, "") }, 200, []string{"paging", "vehicles"}},
		{"v2 vehicle", func() reply { return e.api(t, "GET", "/v2.0/vehicles/"+vid, access, "") }, 200, []string{"id", "make", "model", "year"}},
		{"v2 permissions", func() reply { return e.api(t, "GET", "/v2.0/vehicles/"+vid+"/permissions", access, "") }, 200, []string{"paging", "permissions"}},
		{"v2 vin", func() reply { return e.api(t, "GET", "/v2.0/vehicles/"+vid+"/vin", access, "") }, 403, v2ErrorFields}, // read_vin not granted
		{"v2 lock status", func() reply { return e.api(t, "GET", "/v2.0/vehicles/"+vid+"/security", access, "") }, 200,
			[]string{"chargingPort", "doors", "isLocked", "storage", "sunroof", "windows"}},
		{"v2 lock", func() reply { return e.api(t, "POST", "/v2.0/vehicles/"+vid+"/security", access, `{"action":"LOCK"}`) }, 200, []string{"message", "status"}},
		{"v2 bad action", func() reply { return e.api(t, "POST", "/v2.0/vehicles/"+vid+"/security", access, `{"action":"HONK"}`) }, 400, v2ErrorFields},
		{"v2 expired token", func() reply { return e.api(t, "GET", "/v2.0/user", "expired", "") }, 401, v2ErrorFields},
		{"v3 vehicle", func() reply { return v3("GET", "/v3/vehicles/"+vid) }, 200, []string{"attributes", "id", "links", "type"}},
		{"v3 signals", func() reply { return v3("GET", "/v3/vehicles/"+vid+"/signals") }, 200, []string{"data", "included", "links", "meta"}},
		{"v3 signal", func() reply { return v3("GET", "/v3/vehicles/"+vid+"/signals/closure-islocked") }, 200, []string{"attributes", "id", "links", "meta", "type"}},
		{"v3 lock", func() reply { return v3("POST", "/v3/vehicles/"+vid+"/commands/security/lock") }, 200, []string{"data"}},
		{"v3 other user's vehicle", func() reply {
			req, _ := http.NewRequest("GET", e.base+"/v3/vehicles/"+vid, nil)
			req.Header.Set("Authorization", "Bearer "+appToken)
			req.Header.Set("sc-user-id", "someone-else")
			return do(t, req)
		}, 403, v2ErrorFields},
		{"v3 user token instead of the application's", func() reply {
			req, _ := http.NewRequest("GET", e.base+"/v3/vehicles/"+vid, nil)
			req.Header.Set("Authorization", "Bearer "+access)
			req.Header.Set("sc-user-id", u.ID)
			return do(t, req)
		}, 401, v2ErrorFields},
		{"management: wrong token", func() reply { return management(url.Values{"user_id": {u.ID}}, "Basic eDp5") }, 401, v2ErrorFields},
		{"management: disconnect", func() reply { return management(url.Values{"user_id": {u.ID}, "vehicle_id": {vid}}, amt) }, 200, []string{"connections"}},
	} {
		r := tc.r()
		if r.status != tc.status || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || len(r.header.Get("SC-Request-Id")) != 36 {
			t.Errorf("%s: %d %q, SC-Request-Id %q; want %d JSON with a request id: %s", tc.name, r.status,
				r.header.Get("Content-Type"), r.header.Get("SC-Request-Id"), tc.status, r.raw)
			continue
		}
		if got := keys(r.body); !slices.Equal(got, tc.fields) {
			t.Errorf("%s: members %v, want %v", tc.name, got, tc.fields)
		}
	}

	// The v3 bodies' inner shapes (reference §2.4).
	v := v3("GET", "/v3/vehicles/"+u.VehicleIDs[1])
	if got := keys(obj(v.body["attributes"])); !slices.Equal(got, []string{"make", "model", "year"}) || v.body["type"] != "vehicle" {
		t.Errorf("v3 vehicle: %v", v.body)
	}
	sig := v3("GET", "/v3/vehicles/"+u.VehicleIDs[1]+"/signals/closure-islocked")
	a := obj(sig.body["attributes"])
	if got := keys(a); !slices.Equal(got, []string{"body", "code", "group", "name", "status"}) || sig.body["type"] != "signal" ||
		obj(a["body"])["value"] != true || obj(a["status"])["value"] != "SUCCESS" {
		t.Errorf("lock signal: %v", sig.body)
	}
	if got := keys(obj(sig.body["meta"])); !slices.Equal(got, []string{"oemUpdatedAt", "retrievedAt"}) {
		t.Errorf("signal meta members %v", got)
	}
	list := v3("GET", "/v3/vehicles/"+u.VehicleIDs[1]+"/signals?pageSize=2")
	if got := keys(obj(list.body["meta"])); !slices.Equal(got, []string{"page", "pageSize", "totalCount"}) || obj(list.body["links"])["next"] == nil {
		t.Errorf("signals page: %v", list.body)
	}
	e.sim.SetLongRunningCommands(0)
	cmd := v3("POST", "/v3/vehicles/"+u.VehicleIDs[1]+"/commands/security/unlock")
	exec := obj(cmd.body["data"])
	if cmd.status != http.StatusAccepted || exec["type"] != "command-execution" ||
		obj(obj(exec["attributes"])["status"])["value"] != "PENDING" || obj(exec["attributes"])["commandType"] != "security-unlock" {
		t.Errorf("long-running command: %d %v", cmd.status, cmd.body)
	}
	if r := v3("POST", "/v3/vehicles/"+u.VehicleIDs[1]+"/commands/security/honk"); r.status != http.StatusNotFound {
		t.Errorf("unknown command: %d", r.status)
	}
	bad := e.token(t, "/oauth2/token", "", "", url.Values{"grant_type": {"client_credentials"}, "client_id": {e.sim.ClientID()}, "client_secret": {"wrong"}})
	if bad.status != http.StatusUnauthorized || bad.body["error"] != "invalid_client" {
		t.Errorf("bad client secret: %d %v", bad.status, bad.body)
	}
}
