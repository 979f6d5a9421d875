package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/domain"
)

func TestLockUnlockHistory(t *testing.T) {
	e := startServer(t)
	s, cars := e.garage(1)
	v := cars[0]

	r := e.lock(s.access, v.id, "lock")
	e.expect(r, http.StatusOK, "") // the simulator answers at once, so the POST carries the end
	if r.str("status") != "succeeded" || r.str("vehicle_id") != v.id || r.str("action") != "lock" ||
		r.str("finished_at") == "" || r.header.Get("Location") != "/v1/commands/"+r.str("id") {
		t.Fatalf("lock: %s %v", r.raw, r.header)
	}
	if got := e.await(s.access, r.str("id"), 0); got.str("status") != "succeeded" || got.str("upstream_request_id") == "" {
		t.Fatalf("GET command: %s", got.raw)
	}
	st := e.do("GET", "/v1/vehicles/"+v.id+"/status", nil, s.access)
	if locked, _ := st.body["locked"].(bool); !locked || st.str("source") != "command" {
		t.Fatalf("status after lock: %s", st.raw)
	}

	first := e.command(s.access, v.id, `{"action":"unlock"}`, "4f1d2c3b-unlock")
	e.expect(first, http.StatusOK, "")
	again := e.command(s.access, v.id, `{"action":"unlock"}`, "4f1d2c3b-unlock")
	e.expect(again, http.StatusOK, "")
	if again.str("id") != first.str("id") || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %s %v, want the original %s", again.raw, again.header, first.str("id"))
	}
	e.expect(e.command(s.access, v.id, `{"action":"lock"}`, "4f1d2c3b-unlock"), http.StatusConflict, "IDEMPOTENCY_KEY_REUSED")
	if n := e.carCommands(v); n != 2 {
		t.Fatalf("%d commands reached the car, want 2", n)
	}

	h := e.do("GET", "/v1/vehicles/"+v.id+"/commands?limit=1", nil, s.access)
	e.expect(h, http.StatusOK, "")
	page := h.body["commands"].([]any)
	newest := page[0].(map[string]any)
	if len(page) != 1 || newest["id"] != first.str("id") || newest["device"] != "phone" || newest["status"] != "succeeded" {
		t.Fatalf("history page 1: %s", h.raw)
	}
	h = e.do("GET", "/v1/vehicles/"+v.id+"/commands?limit=5&before="+first.str("id"), nil, s.access)
	e.expect(h, http.StatusOK, "")
	if rest := h.body["commands"].([]any); len(rest) != 1 || rest[0].(map[string]any)["id"] != r.str("id") {
		t.Fatalf("history page 2: %s", h.raw)
	}
	e.expect(e.do("GET", "/v1/vehicles/"+v.id+"/commands?limit=500", nil, s.access), http.StatusBadRequest, "VALIDATION_FAILED")

	other := e.signIn(applesim.NewSubject(), "install-x", "phone")
	e.expect(e.do("GET", "/v1/commands/"+r.str("id"), nil, other.access), http.StatusNotFound, "NOT_FOUND")
	e.expect(e.do("GET", "/v1/vehicles/"+v.id+"/commands", nil, other.access), http.StatusNotFound, "NOT_FOUND")

	m := e.metrics()
	if !strings.Contains(m.raw, `betterkey_command_outcomes_total{action="lock",code="",status="succeeded"} 1`) {
		t.Errorf("metrics lack the lock outcome")
	}
	e.assertNoTokenLeaks()
}

// TestOneCommandInFlightAcrossReplicas: two server instances, 200 parallel identical locks for
// one vehicle while the first is still on its way (the simulator holds it): exactly one command
// reaches the car, every other answer is 409 COMMAND_IN_FLIGHT naming it; a second vehicle of the
// owner is not blocked meanwhile.
func TestOneCommandInFlightAcrossReplicas(t *testing.T) {
	a := startServer(t, withBurstAdmission()) // 100 simultaneous locks at each replica
	b := a.another(withBurstAdmission())
	s, cars := a.garage(2)
	a.sc.SetLatency(smartcarsim.EndpointSecurity, time.Minute)

	const n = 200
	answers := make([]response, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		srv := a
		if i%2 == 1 {
			srv = b
		}
		wg.Go(func() {
			<-start
			answers[i] = srv.lock(s.access, cars[0].id, "lock")
		})
	}
	close(start)
	wg.Wait()

	var winner string
	for _, r := range answers {
		if r.status == http.StatusAccepted {
			if winner != "" {
				t.Fatalf("two commands admitted: %s and %s", winner, r.str("id"))
			}
			winner = r.str("id")
		}
	}
	if winner == "" {
		t.Fatal("no command admitted")
	}
	for i, r := range answers {
		if r.status == http.StatusAccepted {
			continue
		}
		secs, _ := strconv.Atoi(r.header.Get("Retry-After"))
		if r.status != http.StatusConflict || r.str("code") != "COMMAND_IN_FLIGHT" || r.str("command_id") != winner ||
			secs < 1 || r.body["retry_after_seconds"] != float64(secs) {
			t.Fatalf("answer %d: %d %s Retry-After=%q", i, r.status, r.raw, r.header.Get("Retry-After"))
		}
	}
	// The other car is not blocked by the first one's command.
	second := a.lock(s.access, cars[1].id, "unlock")
	a.expect(second, http.StatusAccepted, "")

	a.sc.Close() // release the held commands
	for _, id := range []string{winner, second.str("id")} {
		if r := b.final(s.access, id); r.str("status") != "succeeded" {
			t.Fatalf("command %s ended %s", id, r.raw)
		}
	}
	if got := a.carCommands(cars[0]); got != 1 {
		t.Fatalf("%d commands reached the car, want exactly 1", got)
	}
	if got := a.commandRows(); got != 2 {
		t.Fatalf("%d command rows, want 2", got)
	}
	if m := a.metrics(); !strings.Contains(m.raw, "betterkey_command_conflicts_total") {
		t.Error("metrics lack the conflict count")
	}
}

// TestIdempotentBurst: 100 parallel locks with one Idempotency-Key on two replicas all answer with
// the same command, and one command reaches the car.
func TestIdempotentBurst(t *testing.T) {
	a := startServer(t)
	b := a.another()
	s, cars := a.garage(1)
	a.sc.SetLatency(smartcarsim.EndpointSecurity, time.Minute)
	const n = 100
	ids := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		srv := a
		if i%2 == 1 {
			srv = b
		}
		wg.Go(func() {
			<-start
			r := srv.command(s.access, cars[0].id, `{"action":"lock"}`, "burst-key")
			if r.status != http.StatusAccepted {
				t.Errorf("answer %d: %d %s", i, r.status, r.raw)
			}
			ids[i] = r.str("id")
		})
	}
	close(start)
	wg.Wait()
	for i := range ids {
		if ids[i] != ids[0] {
			t.Fatalf("answer %d names command %s, want %s", i, ids[i], ids[0])
		}
	}
	a.sc.Close()
	if r := a.final(s.access, ids[0]); r.str("status") != "succeeded" {
		t.Fatalf("ended %s", r.raw)
	}
	if got := a.carCommands(cars[0]); got != 1 || a.commandRows() != 1 {
		t.Fatalf("%d commands reached the car and %d rows exist, want 1 and 1", got, a.commandRows())
	}
}

// TestSlowVehicleAnswersAtOnce: with the simulator taking 60 s, the POST answers (202) while the
// simulator still holds the command, and the long-poll sees the end once it is released.
func TestSlowVehicleAnswersAtOnce(t *testing.T) {
	e := startServer(t)
	s, cars := e.garage(1)
	e.sc.SetLatency(smartcarsim.EndpointSecurity, 60*time.Second)
	r := e.lock(s.access, cars[0].id, "unlock")
	e.expect(r, http.StatusAccepted, "")
	if st := r.str("status"); st != "accepted" && st != "dispatched" {
		t.Fatalf("POST answered %s", r.raw)
	}
	if n := e.carCommands(cars[0]); n != 0 {
		t.Fatalf("the POST waited for the simulator (%d commands reached the car)", n)
	}
	if got := e.await(s.access, r.str("id"), 1); got.str("status") != "dispatched" {
		t.Fatalf("after a 1 s long-poll: %s", got.raw)
	}
	e.sc.Close() // releases the held request
	if got := e.final(s.access, r.str("id")); got.str("status") != "succeeded" {
		t.Fatalf("ended %s", got.raw)
	}
}

// TestLongRunningCommandIsConfirmed: with Smartcar v3, a command the car accepts as long-running
// (202) is reported succeeded only once the car's lock signal shows it; until then it stays
// dispatched. It runs on v3 whatever the suite's API.
func TestLongRunningCommandIsConfirmed(t *testing.T) {
	e := startServer(t, withSmartcarAPI("v3"))
	s, cars := e.garage(1)
	e.sc.SetLongRunningCommands(1500 * time.Millisecond)
	r := e.lock(s.access, cars[0].id, "unlock")
	if got := e.await(s.access, r.str("id"), 1); got.str("status") == "succeeded" {
		t.Fatalf("succeeded before the car reached the state: %s", got.raw)
	}
	if got := e.final(s.access, r.str("id")); got.str("status") != "succeeded" {
		t.Fatalf("ended %s", got.raw)
	}
	if car, _ := e.sc.Car(cars[0].sc); car.Locked || car.Commands != 1 {
		t.Fatalf("car: locked %v, commands %d; want unlocked by one command", car.Locked, car.Commands)
	}
	st := e.do("GET", "/v1/vehicles/"+cars[0].id+"/status", nil, s.access)
	if st.status != http.StatusOK || st.body["locked"] != false {
		t.Fatalf("status after the confirmed unlock: %d %s", st.status, st.raw)
	}
}

func TestCommandBadInputStoresNothing(t *testing.T) {
	e := startServer(t)
	s, cars := e.garage(2)
	v := cars[0].id
	other := e.signIn(applesim.NewSubject(), "install-other", "phone")
	for _, tc := range []struct {
		name, access, vehicle, body, key string
		status                           int
		code                             string
	}{
		{"unknown action", s.access, v, `{"action":"open"}`, "", http.StatusBadRequest, "ACTION_INVALID"},
		{"no action", s.access, v, `{}`, "", http.StatusBadRequest, "ACTION_INVALID"},
		{"malformed json", s.access, v, `{"action":`, "", http.StatusBadRequest, "VALIDATION_FAILED"},
		{"empty body", s.access, v, ``, "", http.StatusBadRequest, "VALIDATION_FAILED"},
		{"over-long key", s.access, v, `{"action":"lock"}`, strings.Repeat("k", 65), http.StatusBadRequest, "IDEMPOTENCY_KEY_INVALID"},
		{"key with spaces", s.access, v, `{"action":"lock"}`, "a key", http.StatusBadRequest, "IDEMPOTENCY_KEY_INVALID"},
		{"someone else's vehicle", other.access, v, `{"action":"lock"}`, "", http.StatusNotFound, "NOT_FOUND"},
		{"no such vehicle", s.access, string(domain.NewVehicleID()), `{"action":"lock"}`, "", http.StatusNotFound, "NOT_FOUND"},
		{"not signed in", "", v, `{"action":"lock"}`, "", http.StatusUnauthorized, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.expect(e.command(tc.access, tc.vehicle, tc.body, tc.key), tc.status, tc.code)
		})
	}
	// A disconnected vehicle is gone.
	e.expect(e.do("DELETE", "/v1/vehicles/"+cars[1].id, nil, s.access), http.StatusNoContent, "")
	e.expect(e.lock(s.access, cars[1].id, "lock"), http.StatusNotFound, "NOT_FOUND")
	// A vehicle whose consent was revoked needs the owner to connect again.
	sc, _ := e.sc.Car(cars[0].sc)
	if err := e.sc.RevokeConsent(sc.UserID); err != nil {
		t.Fatal(err)
	}
	if st := e.do("GET", "/v1/vehicles/"+v+"/status", nil, s.access); st.status != http.StatusConflict {
		t.Fatalf("status after revoking: %s", st.raw)
	}
	r := e.lock(s.access, v, "unlock")
	if r.status != http.StatusConflict || (r.str("code") != "REAUTH_REQUIRED" && r.str("code") != "CONSENT_REVOKED") {
		t.Fatalf("command on a dead link: %d %s", r.status, r.raw)
	}
	if c := e.commandRows(); c != 0 {
		t.Fatalf("refused commands stored %d rows", c)
	}
	if n := e.carCommands(cars[0]); n != 0 {
		t.Fatalf("%d commands reached the car", n)
	}
}
