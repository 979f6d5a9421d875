package smartcarsim_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
)

func TestAuthorizeConsentRedirectsWithCodeAndState(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	e.sim.CreateUser(smartcarsim.DefaultFleet()...)
	r, back := e.authorize(t)
	if r.status != http.StatusFound {
		t.Fatalf("status %d, body %s", r.status, r.raw)
	}
	loc, _ := url.Parse(r.header.Get("Location"))
	if loc.Host != "app.example" || loc.Path != "/smartcar/callback" || back.Get("from") != "sim" {
		t.Errorf("Location %s does not keep the registered redirect uri and its query", loc)
	}
	if back.Get("state") != "st-123" || len(back.Get("code")) != 36 || back.Get("error") != "" {
		t.Errorf("redirect query %v, want code and state", back)
	}
	if len(r.header.Get("SC-Request-Id")) != 36 || e.sim.Stats().AuthorizeRequests != 1 {
		t.Errorf("request id %q, authorize requests %d", r.header.Get("SC-Request-Id"), e.sim.Stats().AuthorizeRequests)
	}
	// Node's querystring sends %20 for spaces; url.Values sends +. Both must work.
	req, _ := http.NewRequest(http.MethodGet, e.base+"/oauth/authorize?response_type=code&client_id="+e.sim.ClientID()+
		"&redirect_uri="+url.QueryEscape(appRedirect)+"&scope=read_vehicle_info%20required%3Acontrol_security&state=s2", nil)
	if r := do(t, req); r.status != http.StatusFound || !strings.Contains(r.header.Get("Location"), "code=") {
		t.Errorf("%%20-encoded scope: %d %s", r.status, r.header.Get("Location"))
	}
}

func TestAuthorizeOutcomes(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	e.sim.CreateUser(smartcarsim.DefaultFleet()...)
	for _, tc := range []struct {
		outcome smartcarsim.Outcome
		want    map[string]string
	}{
		{smartcarsim.OutcomeAccessDenied, map[string]string{"error_description": "User denied access to application."}},
		{smartcarsim.OutcomeVehicleIncompatible, map[string]string{"vin": "0SCAUDI012FE3B132", "make": "AUDI", "model": "A4", "year": "2017"}},
		{smartcarsim.OutcomeNoVehicles, map[string]string{"error_description": "No vehicles found. Please add vehicles to your account and try again."}},
		{smartcarsim.OutcomeInvalidSubscription, map[string]string{"error_description": "User does not have an active connected vehicle subscription."}},
		{smartcarsim.OutcomeServerError, map[string]string{}},
		{smartcarsim.OutcomeConfigurationError, map[string]string{"status_code": "400",
			"error_description": "There has been an error in the configuration of your application."}},
	} {
		for _, via := range []string{"param", "switch"} {
			var back url.Values
			var r reply
			if via == "param" {
				r, back = e.authorize(t, "sim_outcome", string(tc.outcome))
			} else {
				e.sim.SetConnectOutcome(tc.outcome)
				r, back = e.authorize(t)
				e.sim.SetConnectOutcome(smartcarsim.OutcomeConsent)
			}
			want := map[string]string{"error": string(tc.outcome), "state": "st-123", "code": ""}
			got := map[string]string{"error": back.Get("error"), "state": back.Get("state"), "code": back.Get("code")}
			for k, v := range tc.want {
				want[k], got[k] = v, back.Get(k)
			}
			if diff := cmp.Diff(got, want); r.status != http.StatusFound || diff != "" {
				t.Errorf("%s via %s: status %d (-got +want):\n%s", tc.outcome, via, r.status, diff)
			}
			if back.Get("error_description") == "" {
				t.Errorf("%s: no error_description", tc.outcome)
			}
		}
	}
}

func TestAuthorizeRefusesToRedirectUntrustedRequests(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	e.sim.CreateUser(smartcarsim.DefaultFleet()...)
	for name, kv := range map[string][]string{
		"unknown client":          {"client_id", "not-our-client"},
		"unregistered redirect":   {"redirect_uri", "https://evil.example/cb"},
		"redirect prefix trick":   {"redirect_uri", appRedirect + "&x=1"},
		"unknown sim_user":        {"sim_user", "nobody"},
		"unknown simulator value": {"sim_outcome", "alien_abduction"},
	} {
		r, _ := e.authorize(t, kv...)
		if r.status != http.StatusBadRequest || r.header.Get("Location") != "" || !strings.Contains(r.raw, "<h1>") {
			t.Errorf("%s: status %d, Location %q; want an error page", name, r.status, r.header.Get("Location"))
		}
	}
}

func TestAuthorizeConfigurationErrors(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	e.sim.CreateUser(smartcarsim.DefaultFleet()...)
	for name, kv := range map[string][]string{
		"response type": {"response_type", "token"},
		"mode":          {"mode", "sandbox"},
		"scope":         {"scope", "required:control_security teleport"},
	} {
		r, back := e.authorize(t, kv...)
		if r.status != http.StatusFound || back.Get("error") != "configuration_error" || back.Get("status_code") != "400" ||
			back.Get("error_message") == "" || back.Get("state") != "st-123" {
			t.Errorf("%s: %d %v", name, r.status, back)
		}
	}
}

func TestSeedDefaultUserConsentsByDefault(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{SeedDefaultUser: true})
	_, back := e.authorize(t)
	r := e.grant(t, url.Values{"grant_type": {"authorization_code"}, "code": {back.Get("code")}, "redirect_uri": {appRedirect}})
	v := e.api(t, http.MethodGet, "/v2.0/vehicles", r.body["access_token"].(string), "")
	ids := v.body["vehicles"].([]any)
	var got []string
	for _, id := range ids {
		car, _ := e.sim.Car(id.(string))
		got = append(got, car.Spec.Make+" "+car.Spec.Model)
	}
	if diff := cmp.Diff(got, []string{"TESLA Model 3", "FORD Mustang Mach-E"}); diff != "" {
		t.Errorf("(-got +want):\n%s", diff)
	}
}

func TestAuthorizeChoosesUserAndVehicles(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	if _, back := e.authorize(t); back.Get("error") != "no_vehicles" {
		t.Errorf("no users: %v, want no_vehicles", back)
	}
	first := e.sim.CreateUser(smartcarsim.DefaultFleet()...)
	second := e.sim.CreateUser(smartcarsim.VehicleSpec{Make: "tesla", Model: "Model Y", Year: 2024})
	vehiclesOf := func(kv ...string) []any {
		t.Helper()
		_, back := e.authorize(t, kv...)
		if back.Get("code") == "" {
			return []any{back.Get("error")}
		}
		r := e.grant(t, url.Values{"grant_type": {"authorization_code"}, "code": {back.Get("code")}, "redirect_uri": {appRedirect}})
		v := e.api(t, http.MethodGet, "/v2.0/vehicles", r.body["access_token"].(string), "")
		return v.body["vehicles"].([]any)
	}
	for name, tc := range map[string]struct {
		kv   []string
		want []any
	}{
		"first user by default":             {nil, []any{first.VehicleIDs[0], first.VehicleIDs[1]}},
		"make filter":                       {[]string{"make", "FORD"}, []any{first.VehicleIDs[1]}},
		"single select":                     {[]string{"single_select", "true"}, []any{first.VehicleIDs[0]}},
		"make without a match":              {[]string{"make", "BMW"}, []any{"no_vehicles"}},
		"sim_user":                          {[]string{"sim_user", second.ID}, []any{second.VehicleIDs[0]}},
		"single_select_vin":                 {[]string{"single_select_vin", "3fmtk3su5nm000002"}, []any{first.VehicleIDs[1]}},
		"single_select_vin without a match": {[]string{"single_select_vin", "WVWZZZ1JZXW000000"}, []any{"no_vehicles"}},
	} {
		if diff := cmp.Diff(vehiclesOf(tc.kv...), tc.want); diff != "" {
			t.Errorf("%s (-got +want):\n%s", name, diff)
		}
	}
	if err := e.sim.SetConsentUser(second.ID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(vehiclesOf(), []any{second.VehicleIDs[0]}); diff != "" {
		t.Errorf("SetConsentUser (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(vehiclesOf("redirect_uri", ""), []any{second.VehicleIDs[0]}); diff != "" {
		t.Errorf("no redirect_uri uses the first registered one (-got +want):\n%s", diff)
	}
	if err := e.sim.SetConsentUser("nobody"); err == nil {
		t.Error("SetConsentUser accepted an unknown user")
	}
}
