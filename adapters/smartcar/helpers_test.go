package smartcar_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/smartcar"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/fakeclock"
)

const redirectURI = "https://betterkey.test/v1/smartcar/callback"

// start is the fake clock's origin.
var start = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// simEnv is the adapter talking to the simulator over real HTTP, the simulator mounted under
// /smartcar as the dev server mounts it.
type simEnv struct {
	sim    *smartcarsim.Simulator
	client *smartcar.Client
	api    ports.VehicleAPI // client, or the v3 client built on it
	clock  *fakeclock.Clock
	base   string
	srv    *httptest.Server
}

// newSimEnvAPI starts the simulator and an adapter of the given API generation talking to it.
func newSimEnvAPI(t *testing.T, api smartcar.API) *simEnv {
	t.Helper()
	clock := fakeclock.New(start)
	sim, err := smartcarsim.New(smartcarsim.Options{RedirectURIs: []string{redirectURI}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/smartcar/", http.StripPrefix("/smartcar", sim.Handler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close) // runs first: releases hanging requests
	base := srv.URL + "/smartcar"
	cfg := smartcar.Config{
		ConnectURL: base, AuthURL: base, APIURL: base, VehicleURL: base, IAMURL: base, ManagementURL: base,
		ClientID: sim.ClientID(), ClientSecret: domain.NewSecret(sim.ClientSecret()),
		RedirectURI: redirectURI, Mode: smartcar.ModeTest,
		API: api, ManagementToken: domain.NewSecret(sim.ManagementToken()), ConfirmInterval: time.Millisecond,
	}
	c, err := smartcar.New(cfg, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	smartcar.SetNow(c, clock.Now)
	env := &simEnv{sim: sim, client: c, api: c, clock: clock, base: base, srv: srv}
	if api == smartcar.APIv3 {
		v3, err := smartcar.NewV3(cfg, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		smartcar.SetNow(v3.Client, clock.Now)
		env.api = v3
	}
	return env
}

// newClient builds an adapter for an arbitrary upstream (a handcrafted test server).
func newClient(t *testing.T, base string, mod func(*smartcar.Config)) *smartcar.Client {
	t.Helper()
	cfg := smartcar.Config{ConnectURL: base, AuthURL: base, APIURL: base, ClientID: "client-id",
		ClientSecret: domain.NewSecret("client-secret-canary"), RedirectURI: redirectURI}
	if mod != nil {
		mod(&cfg)
	}
	c, err := smartcar.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
