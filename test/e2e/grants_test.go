package e2e

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
)

// TestPartialGrant: an owner who unticks read_security in Connect gets a car key that locks and
// unlocks; the vehicle list shows only what was granted, and the status answers 403
// SCOPE_NOT_GRANTED instead of pretending or marking the connection revoked.
func TestPartialGrant(t *testing.T) {
	e := startServer(t)
	sc := e.sc.CreateUser(smartcarsim.VehicleSpec{Make: "TESLA", Model: "Model 3", Year: 2023})
	if err := e.sc.SetConsentUser(sc.ID); err != nil {
		t.Fatal(err)
	}
	s := e.signIn(applesim.NewSubject(), "install-phone", "phone")
	r := e.do("POST", "/v1/vehicles/connect", map[string]any{}, s.access)
	e.expect(r, http.StatusOK, "")
	authorize, err := url.Parse(r.str("authorize_url"))
	if err != nil {
		t.Fatal(err)
	}
	q := authorize.Query()
	q.Set("scope", "required:control_security read_vehicle_info") // read_security declined
	authorize.RawQuery = q.Encode()
	back := e.hop(e.hop(authorize.String()).String()).Query()
	if back.Get("status") != "pending" {
		t.Fatalf("connect: %v", back)
	}
	e.expect(e.do("POST", "/v1/vehicles/connect/complete", map[string]any{"link": back.Get("link")}, s.access), http.StatusOK, "")

	vs := e.vehicles(s.access)
	if len(vs) != 1 {
		t.Fatalf("vehicles: %v", vs)
	}
	if diff := cmp.Diff(vs[0]["capabilities"], []any{"lock", "unlock", "vehicle_info"}); diff != "" {
		t.Errorf("capabilities (-got +want):\n%s", diff)
	}
	id := vs[0]["id"].(string)
	e.expect(e.do("GET", "/v1/vehicles/"+id+"/status", nil, s.access), http.StatusForbidden, "SCOPE_NOT_GRANTED")
	if r := e.lock(s.access, id, "unlock"); r.status != http.StatusOK && r.status != http.StatusAccepted {
		t.Fatalf("unlock without read_security: %d %s", r.status, r.raw)
	}
	if v := e.vehicles(s.access)[0]; v["status"] != "active" {
		t.Errorf("connection status %v after the refused status read, want active", v["status"])
	}
}
