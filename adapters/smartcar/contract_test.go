package smartcar_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/smartcar"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
	"github.com/betterkey/backend/test/fakeclock"
)

// simControl drives the simulator for the contract suite.
type simControl struct {
	*fakeclock.Clock
	env *simEnv
}

func (c simControl) Client() (string, string) { return c.env.sim.ClientID(), redirectURI }

func (c simControl) CreateUser(_ *testing.T, vs ...domain.VehicleAttributes) (string, []string) {
	specs := make([]smartcarsim.VehicleSpec, 0, len(vs))
	for _, v := range vs {
		specs = append(specs, smartcarsim.VehicleSpec{Make: v.Make, Model: v.Model, Year: v.Year})
	}
	u := c.env.sim.CreateUser(specs...)
	return u.ID, u.VehicleIDs
}

// Consent opens the Connect URL as the owner's browser would, without following the redirect.
func (c simControl) Consent(t *testing.T, authorizeURL, userID string) domain.Secret {
	t.Helper()
	// The simulator server's own client, not http.DefaultTransport: a parallel test's
	// httptest.Server.Close closes the default transport's idle connections under this request.
	browser := *c.env.srv.Client()
	browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	u, err := url.Parse(authorizeURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("sim_user", userID)
	u.RawQuery = q.Encode()
	resp, err := browser.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("Connect answered %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if loc.Query().Get("state") != q.Get("state") {
		t.Fatal("Connect did not echo state")
	}
	return domain.NewSecret(loc.Query().Get("code"))
}

func (c simControl) SetCondition(t *testing.T, id string, cond contract.VehicleCondition) {
	t.Helper()
	if err := c.env.sim.SetCondition(id, smartcarsim.Condition(cond)); err != nil {
		t.Fatal(err)
	}
}

func (c simControl) RateLimit(t *testing.T, id string, d time.Duration) {
	t.Helper()
	if err := c.env.sim.RateLimit(id, d); err != nil {
		t.Fatal(err)
	}
}

var endpointByCall = map[contract.VehicleCall]smartcarsim.Endpoint{
	contract.CallToken:      smartcarsim.EndpointToken,
	contract.CallLockStatus: smartcarsim.EndpointLockStatus,
	contract.CallSecurity:   smartcarsim.EndpointSecurity,
}

func (c simControl) FailNext(_ *testing.T, call contract.VehicleCall, status int) {
	c.env.sim.SetFault(endpointByCall[call], smartcarsim.Fault{Status: status, Times: 1})
}

func (c simControl) HangNextCommand(t *testing.T) <-chan struct{} {
	fired := make(chan smartcarsim.Endpoint, 1)
	c.env.sim.SetFault(smartcarsim.EndpointSecurity, smartcarsim.Fault{Hang: true, AfterEffect: true, Times: 1, Fired: fired})
	reached := make(chan struct{})
	go func() {
		select {
		case <-fired:
			close(reached)
		case <-t.Context().Done():
		}
	}()
	return reached
}

func (c simControl) RevokeConsent(t *testing.T, user string) {
	t.Helper()
	if err := c.env.sim.RevokeConsent(user); err != nil {
		t.Fatal(err)
	}
}

func (c simControl) Counts() (int, int) {
	s := c.env.sim.Stats()
	return int(s.CodeExchanges), int(s.Refreshes)
}

func (c simControl) Car(t *testing.T, id string) (bool, int) {
	t.Helper()
	car, ok := c.env.sim.Car(id)
	if !ok {
		t.Fatalf("no car %q", id)
	}
	return car.Locked, car.Commands
}

func (c simControl) RefreshGrace() time.Duration { return smartcarsim.DefaultRefreshGrace }

func TestVehicleAPIContractAgainstSimulator(t *testing.T) {
	for _, api := range []smartcar.API{smartcar.APIv2, smartcar.APIv3} {
		t.Run(string(api), func(t *testing.T) {
			contract.VehicleAPI(t, func(t *testing.T) (ports.VehicleAPI, contract.VehicleAPIControl) {
				env := newSimEnvAPI(t, api)
				return env.api, simControl{Clock: env.clock, env: env}
			})
		})
	}
}
