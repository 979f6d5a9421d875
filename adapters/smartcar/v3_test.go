package smartcar_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/smartcar"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// linkV3 connects a new simulator user with one car through Connect and returns the grant the
// v3 calls act under (the Smartcar user id, no token).
func linkV3(t *testing.T, env *simEnv) (domain.VehicleGrant, string) {
	t.Helper()
	u := env.sim.CreateUser(smartcarsim.VehicleSpec{Make: "TESLA", Model: "Model 3", Year: 2023})
	ctl := simControl{Clock: env.clock, env: env}
	code := ctl.Consent(t, env.api.AuthorizeURL(domain.NewOpaqueToken(), ports.ConnectOptions{}), u.ID)
	if _, err := env.api.ExchangeCode(t.Context(), code); err != nil {
		t.Fatal(err)
	}
	return domain.VehicleGrant{SmartcarUserID: u.ID}, u.VehicleIDs[0]
}

// One application token serves every call until shortly before it expires; a token the API
// refuses is replaced and the call sent again, once.
func TestV3ApplicationToken(t *testing.T) {
	env := newSimEnvAPI(t, smartcar.APIv3)
	g, id := linkV3(t, env)
	if env.api.UserTokens() {
		t.Fatal("UserTokens() = true for v3")
	}
	for range 5 {
		if _, err := env.api.LockStatus(t.Context(), g, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := env.sim.Stats().AppTokens; n != 1 {
		t.Errorf("application tokens after 5 calls = %d, want 1", n)
	}
	env.clock.Advance(56 * time.Minute) // inside the 5-minute margin of the 1 h token
	if _, err := env.api.LockStatus(t.Context(), g, id); err != nil {
		t.Fatal(err)
	}
	if n := env.sim.Stats().AppTokens; n != 2 {
		t.Errorf("application tokens after 56 min = %d, want 2 (replaced before expiry)", n)
	}
	env.sim.ExpireAppTokens()
	if _, err := env.api.Security(t.Context(), g, id, domain.SecurityUnlock); err != nil {
		t.Fatalf("Security after the upstream dropped our token: %v", err)
	}
	if car, _ := env.sim.Car(id); car.Locked || car.Commands != 1 {
		t.Errorf("car: locked %v, commands %d; want one unlock", car.Locked, car.Commands)
	}
	if n := env.sim.Stats().AppTokens; n != 3 {
		t.Errorf("application tokens = %d, want 3", n)
	}
	if _, err := env.api.LockStatus(t.Context(), domain.VehicleGrant{}, id); domain.KindOf(err) != domain.KindInvalid {
		t.Errorf("LockStatus without a Smartcar user = %v, want KindInvalid", err)
	}
}

// Wrong client credentials are our misconfiguration: rejected, never a reason to send the owner
// back to Connect.
func TestV3BadClientCredentials(t *testing.T) {
	env := newSimEnvAPI(t, smartcar.APIv3)
	g, id := linkV3(t, env)
	bad, err := smartcar.NewV3(smartcar.Config{ConnectURL: env.base, AuthURL: env.base, APIURL: env.base,
		VehicleURL: env.base, IAMURL: env.base, ManagementURL: env.base, ClientID: env.sim.ClientID(),
		ClientSecret: domain.NewSecret("wrong-secret-canary"), RedirectURI: redirectURI,
		ManagementToken: domain.NewSecret("wrong-amt-canary")}, env.srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.LockStatus(t.Context(), g, id)
	wantClass(t, "bad client secret", err, domain.ErrUpstreamRejected)
	err = bad.Disconnect(t.Context(), g, id)
	wantClass(t, "bad management token", err, domain.ErrUpstreamRejected)
	for _, s := range []string{"wrong-secret-canary", "wrong-amt-canary"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q shows a credential", err)
		}
	}
	if car, _ := env.sim.Car(id); car.Commands != 0 {
		t.Error("a refused call reached the car")
	}
}

func wantClass(t *testing.T, what string, err error, target *domain.Error) {
	t.Helper()
	if !errors.Is(err, target) || domain.RequiresReconnect(err) {
		t.Errorf("%s: %v; want %v and no reconnect", what, err, target)
	}
}

// A 202 is a command still running at the car: success only once the lock signal shows the
// requested state, recorded after the command was sent.
func TestV3LongRunningCommand(t *testing.T) {
	env := newSimEnvAPI(t, smartcar.APIv3)
	g, id := linkV3(t, env)
	env.sim.SetLongRunningCommands(0) // 202, and the car is there at the next look
	if _, err := env.api.Security(t.Context(), g, id, domain.SecurityUnlock); err != nil {
		t.Fatalf("confirmed long-running unlock: %v", err)
	}
	if car, _ := env.sim.Car(id); car.Locked {
		t.Error("car still locked")
	}

	// The car takes an hour: the command never counts as success, and says it may have run.
	env.sim.SetLongRunningCommands(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := env.api.Security(ctx, g, id, domain.SecurityLock)
	u := domain.AsUpstream(err)
	if u == nil || !errors.Is(err, domain.ErrUpstreamTimeout) || !u.MayHaveExecuted() || u.ShouldRetry() || u.RequestID == "" {
		t.Fatalf("unconfirmed lock = %v (%+v); want an upstream timeout that may have executed, with the request id", err, u)
	}

	// A lock state from before the command proves nothing: the car was locked already, yet this
	// lock is not confirmed by it.
	if err := env.sim.SetLocked(id, true); err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(time.Minute)
	ctx, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := env.api.Security(ctx, g, id, domain.SecurityLock); !errors.Is(err, domain.ErrUpstreamTimeout) {
		t.Errorf("lock confirmed by an observation older than the command: %v", err)
	}
}

// v3 errors carry the v2 classes, and a grant revoked at Smartcar is ErrConsentRevoked.
func TestV3Errors(t *testing.T) {
	env := newSimEnvAPI(t, smartcar.APIv3)
	g, id := linkV3(t, env)
	if err := env.sim.SetCondition(id, smartcarsim.ConditionDriving); err != nil {
		t.Fatal(err)
	}
	if _, err := env.api.Security(t.Context(), g, id, domain.SecurityUnlock); !errors.Is(err, domain.ErrVehicleInMotion) {
		t.Errorf("driving car: %v", err)
	}
	if err := env.sim.RevokeConsent(g.SmartcarUserID); err != nil {
		t.Fatal(err)
	}
	if _, err := env.api.LockStatus(t.Context(), g, id); !errors.Is(err, domain.ErrConsentRevoked) {
		t.Errorf("revoked grant: %v", err)
	}
	other := domain.VehicleGrant{SmartcarUserID: "someone-else"}
	if _, err := env.api.Attributes(t.Context(), other, id); !errors.Is(err, domain.ErrConsentRevoked) {
		t.Errorf("another user's vehicle: %v", err)
	}
}

// v3Upstream is a handcrafted v3 API: the token endpoint and one signals answer.
func v3Upstream(t *testing.T, signals func(w http.ResponseWriter, r *http.Request)) (*smartcar.V3, *[]*http.Request) {
	t.Helper()
	var (
		mu   sync.Mutex
		seen []*http.Request
	)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(b), "grant_type=client_credentials") || r.Header.Get("Authorization") != "" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, `{"access_token":"app-token-canary","token_type":"Bearer","expires_in":3600}`)
	})
	mux.HandleFunc("/v3/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Clone(context.Background()))
		mu.Unlock()
		signals(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := smartcar.NewV3(smartcar.Config{ConnectURL: srv.URL, AuthURL: srv.URL, APIURL: srv.URL, VehicleURL: srv.URL,
		IAMURL: srv.URL, ManagementURL: srv.URL, ClientID: "client-id", ClientSecret: domain.NewSecret("secret"),
		RedirectURI: redirectURI, ManagementToken: domain.NewSecret("amt")}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return c, &seen
}

// The lock status comes from the closure signals across pages; times in seconds or
// milliseconds; doors by row and column; the request names the user and uses the app token.
func TestV3LockStatusFromSignals(t *testing.T) {
	c, seen := v3Upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("page") == "" {
			_, _ = io.WriteString(w, `{"data":[{"id":"s1","type":"signal","attributes":{"code":"closure-doors","status":{"value":"SUCCESS"},
				"body":{"values":[{"row":0,"column":0,"isOpen":true,"isLocked":false},{"row":1,"column":1,"isOpen":false}],"rowCount":2,"columnCount":2}},
				"meta":{"retrievedAt":1796637600,"oemUpdatedAt":1796637590}}],
				"meta":{"page":1,"pageSize":1,"totalCount":2},"links":{"next":"/vehicles/veh-1/signals?page=2"}}`)
			return
		}
		_, _ = io.WriteString(w, `{"data":[{"id":"s2","type":"signal","attributes":{"code":"closure-islocked","status":{"value":"SUCCESS"},"body":{"value":false}},
			"meta":{"retrievedAt":1796637600000,"oemUpdatedAt":1796637590000}}],"meta":{"page":2,"pageSize":1,"totalCount":2},"links":{}}`)
	})
	st, err := c.LockStatus(t.Context(), domain.VehicleGrant{SmartcarUserID: "user-1"}, "veh-1")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1796637600, 0).UTC()
	if st.Locked == nil || *st.Locked || !st.FetchedAt.Equal(at) || !st.ObservedAt.Equal(at.Add(-10*time.Second)) {
		t.Errorf("status = %+v", st)
	}
	got, _ := json.Marshal(st.Doors)
	if want := `[{"Type":"frontLeft","Status":"OPEN"},{"Type":"backRight","Status":"CLOSED"}]`; string(got) != want {
		t.Errorf("doors = %s, want %s", got, want)
	}
	for _, r := range *seen {
		if r.Header.Get("Authorization") != "Bearer app-token-canary" || r.Header.Get("sc-user-id") != "user-1" {
			t.Errorf("%s: Authorization %q, sc-user-id %q", r.URL, r.Header.Get("Authorization"), r.Header.Get("sc-user-id"))
		}
	}
	if len(*seen) != 2 {
		t.Errorf("%d signal requests, want 2 pages", len(*seen))
	}
}

// A lock signal the car could not read is that failure, in the v2 classes; a next link to
// another origin is not followed (it would carry the application token away).
func TestV3SignalFailures(t *testing.T) {
	c, _ := v3Upstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"data":[{"id":"s","type":"signal","attributes":{"code":"closure-islocked",
			"status":{"value":"ERROR","error":{"type":"VEHICLE_STATE","code":"ASLEEP"}}}}],"links":{}}`)
	})
	_, err := c.LockStatus(t.Context(), domain.VehicleGrant{SmartcarUserID: "u"}, "veh-1")
	if !errors.Is(err, domain.ErrVehicleAsleep) {
		t.Errorf("failed lock signal: %v, want ErrVehicleAsleep", err)
	}
	away, seen := v3Upstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"data":[],"links":{"next":"https://elsewhere.example/v3/vehicles/veh-1/signals?page=2"}}`)
	})
	if _, err := away.LockStatus(t.Context(), domain.VehicleGrant{SmartcarUserID: "u"}, "veh-1"); !errors.Is(err, domain.ErrUpstreamUnavailable) {
		t.Errorf("off-origin next link: %v", err)
	}
	if len(*seen) != 1 {
		t.Errorf("%d requests, want 1", len(*seen))
	}
}

// The simulator's faults strike the application token endpoint as they strike the others: a
// token endpoint that is down is a temporary outage, and nothing reached the car.
func TestV3TokenEndpointDown(t *testing.T) {
	env := newSimEnvAPI(t, smartcar.APIv3)
	g, id := linkV3(t, env)
	env.sim.SetFault(smartcarsim.EndpointAppToken, smartcarsim.Fault{Status: http.StatusServiceUnavailable, Times: 1})
	_, err := env.api.Security(t.Context(), g, id, domain.SecurityLock)
	u := domain.AsUpstream(err)
	if !errors.Is(err, domain.ErrUpstreamUnavailable) || u == nil || !u.Temporary() || u.MayHaveExecuted() {
		t.Fatalf("Security with the token endpoint down = %v", err)
	}
	if car, _ := env.sim.Car(id); car.Commands != 0 {
		t.Error("a command reached the car without a token")
	}
	if _, err := env.api.Security(t.Context(), g, id, domain.SecurityLock); err != nil {
		t.Errorf("Security once the token endpoint is back: %v", err)
	}
}

// The signal list is read only as far as the lock status needs: a first page holding every
// closure signal ends the read, whatever the list says is next; and an endless list ends after
// a bounded number of pages with an error, not a loop.
func TestV3SignalPagingIsBounded(t *testing.T) {
	closure := `{"id":"%s","type":"signal","attributes":{"code":"%s","status":{"value":"SUCCESS"},"body":%s}}`
	all, seen := v3Upstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"data":[`+
			fmt.Sprintf(closure, "a", "closure-islocked", `{"value":true}`)+","+
			fmt.Sprintf(closure, "b", "closure-doors", `{"values":[]}`)+","+
			fmt.Sprintf(closure, "c", "closure-windows", `{"values":[]}`)+
			`],"links":{"next":"/vehicles/veh-1/signals?page=2"}}`)
	})
	if st, err := all.LockStatus(t.Context(), domain.VehicleGrant{SmartcarUserID: "u"}, "veh-1"); err != nil || st.Locked == nil || !*st.Locked {
		t.Fatalf("LockStatus = %+v, %v", st, err)
	}
	if len(*seen) != 1 {
		t.Errorf("%d signal pages read, want 1: the first held every closure signal", len(*seen))
	}
	var pages atomic.Int64
	endless, _ := v3Upstream(t, func(w http.ResponseWriter, r *http.Request) {
		n := pages.Add(1)
		_, _ = fmt.Fprintf(w, `{"data":[],"links":{"next":"/vehicles/veh-1/signals?page=%d"}}`, n+1)
	})
	if _, err := endless.LockStatus(t.Context(), domain.VehicleGrant{SmartcarUserID: "u"}, "veh-1"); !errors.Is(err, domain.ErrUpstreamUnavailable) {
		t.Errorf("endless signal list: %v, want ErrUpstreamUnavailable", err)
	}
	if n := pages.Load(); n != 10 {
		t.Errorf("%d pages read of an endless list, want the bound of 10", n)
	}
}
