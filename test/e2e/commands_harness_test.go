package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/cmd/betterkeyd/wiring"
)

// commandClient carries the parallel bursts; its pool is large enough that a burst does not
// churn through connections.
var commandClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 60 * time.Second}

// car is one of a test owner's vehicles: our id and the simulator's.
type car struct {
	id string // BetterKey's vehicle id
	sc string // the simulator's vehicle id
}

// garage signs a new owner in (on a phone) and connects a fresh Smartcar account with n cars
// through e; the cars come back in creation order.
func (e *env) garage(n int) (session, []car) {
	e.t.Helper()
	specs := make([]smartcarsim.VehicleSpec, n)
	for i := range specs {
		specs[i] = smartcarsim.VehicleSpec{Make: "TESLA", Model: "Car " + strconv.Itoa(i), Year: 2024}
	}
	scUser := e.sc.CreateUser(specs...)
	if err := e.sc.SetConsentUser(scUser.ID); err != nil {
		e.t.Fatal(err)
	}
	s := e.signIn(applesim.NewSubject(), "install-"+strconv.Itoa(n), "phone")
	if q, _ := e.connect(s.access, ""); q.Get("status") != "linked" {
		e.t.Fatalf("connect: %v", q)
	}
	byModel := map[string]string{}
	for _, v := range e.vehicles(s.access) {
		byModel[v["model"].(string)] = v["id"].(string)
	}
	cars := make([]car, n)
	for i := range cars {
		cars[i] = car{id: byModel["Car "+strconv.Itoa(i)], sc: scUser.VehicleIDs[i]}
	}
	return s, cars
}

// command sends POST /v1/vehicles/{vehicle}/commands with an optional Idempotency-Key.
func (e *env) command(access, vehicle, body, key string) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.servers.HTTPURL()+"/v1/vehicles/"+vehicle+"/commands", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+access)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return e.send(req)
}

// send performs req and records the body for the leak scans; failures are reported with Error,
// since bursts call it from many goroutines.
func (e *env) send(req *http.Request) response {
	res, err := commandClient.Do(req)
	if err != nil {
		e.t.Error(err)
		return response{}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Error(err)
	}
	e.mu.Lock()
	e.bodies = append(e.bodies, string(raw))
	e.mu.Unlock()
	checkContract(e.t, req, res, raw)
	e.leaks.observe(req, res, raw)
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// lock is a POST of {"action": action} without a key.
func (e *env) lock(access, vehicle, action string) response {
	e.t.Helper()
	return e.command(access, vehicle, `{"action":"`+action+`"}`, "")
}

// await long-polls the command for up to wait seconds.
func (e *env) await(access, id string, wait int) response {
	e.t.Helper()
	r := e.do("GET", "/v1/commands/"+id+"?wait="+strconv.Itoa(wait), nil, access)
	e.expect(r, http.StatusOK, "")
	return r
}

// final long-polls until the command has ended, for at most about a minute.
func (e *env) final(access, id string) response {
	e.t.Helper()
	for range 3 {
		if r := e.await(access, id, 20); isFinal(r.str("status")) {
			return r
		}
	}
	e.t.Fatalf("command %s did not end", id)
	return response{}
}

func isFinal(status string) bool {
	switch status {
	case "succeeded", "failed", "unknown", "expired":
		return true
	}
	return false
}

// carCommands is how many commands reached the simulated car.
func (e *env) carCommands(c car) int {
	e.t.Helper()
	sc, ok := e.sc.Car(c.sc)
	if !ok {
		e.t.Fatalf("no simulated car %s", c.sc)
	}
	return sc.Commands
}

// replica starts another server instance on e's infrastructure with extra fx options (to tune
// the command settings or to get at its services) and returns it with a function that stops it
// early; it is stopped at the end of the test otherwise.
func (e *env) replica(extra ...fx.Option) (*env, func(ctx context.Context) error) {
	e.t.Helper()
	addr := freeAddr(e.t)
	r := &env{t: e.t, infra: e.infra, apple: e.apple, sc: e.sc, logs: &syncBuffer{}, dbURL: e.dbURL, signingKey: e.signingKey}
	level := slog.LevelDebug
	if _, bench := e.t.(*testing.B); bench {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: level}))
	app := fxtest.New(e.t, wiring.Options(serverConfig(e.t, e.infra, addr), log), fx.Populate(&r.servers), fx.Options(extra...))
	app.RequireStart()
	var once sync.Once
	stop := func(ctx context.Context) error {
		var err error
		once.Do(func() { err = app.Stop(ctx) })
		return err
	}
	e.t.Cleanup(func() { _ = stop(context.Background()) })
	return r, stop
}

// store opens the database directly, as a process that shares it would.
func (e *env) store() *postgres.DB {
	e.t.Helper()
	db, err := postgres.Open(e.t.Context(), e.dbURL, postgres.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = db.Close() })
	return db
}

// commandRows counts the rows of the commands table.
func (e *env) commandRows() int {
	e.t.Helper()
	return e.count("commands")
}
