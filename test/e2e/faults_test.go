package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
)

// startBehindProxy starts a server whose database connections pass through a TCP proxy the test
// controls; the test's own checks read the database directly.
func startBehindProxy(t *testing.T, opts ...option) (*env, *tcpProxy) {
	t.Helper()
	addr := freeAddr(t)
	in := newInfra(t, "http://"+addr+"/v1/smartcar/callback")
	px := newTCPProxy(t, dbHost(t, in.dbURL))
	opts = append([]option{func(v map[string]string) { v["BETTERKEY_DATABASE_URL"] = px.proxiedURL(in.dbURL) }}, opts...)
	return startOn(t, in, addr, opts...), px
}

// outageProbe is one request an app or Smartcar makes while the database is away.
type outageProbe struct {
	name string
	do   func() response
}

// outageProbes covers every kind of request: anonymous, authenticated reads and writes, a
// command, a refresh, a sign-in, a webhook and the readiness probe.
func outageProbes(e *env, s session, vehicle, scVehicle string) []outageProbe {
	return []outageProbe{
		{"readyz", func() response { return e.do("GET", "/readyz", nil, "") }},
		{"nonce", func() response { return e.do("POST", "/v1/auth/nonce", nil, "") }},
		{"sign-in", func() response {
			return e.do("POST", "/v1/auth/apple", map[string]string{"identity_token": e.mint(applesim.NewSubject(), "n", nil),
				"nonce": "n", "install_id": "i", "device": "phone"}, "")
		}},
		{"refresh", func() response {
			return e.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": s.refresh}, "")
		}},
		{"me", func() response { return e.do("GET", "/v1/me", nil, s.access) }},
		{"vehicles", func() response { return e.do("GET", "/v1/vehicles", nil, s.access) }},
		{"lock", func() response { return e.lock(s.access, vehicle, "lock") }},
		{"history", func() response { return e.do("GET", "/v1/vehicles/"+vehicle+"/commands", nil, s.access) }},
		{"webhook", func() response {
			ev, err := e.sc.LockStateEvent(scVehicle, smartcarsim.Drift{})
			if err != nil {
				e.t.Fatal(err)
			}
			a, h, raw := e.sc.DeliverOnce(e.t.Context(), e.webhookURL(), ev)
			if a.Err != nil {
				e.t.Fatalf("webhook attempt failed: %v", a.Err)
			}
			r := response{status: a.Status, header: h, raw: string(raw)}
			_ = json.Unmarshal(raw, &r.body)
			return r
		}},
	}
}

// tally runs every probe rounds times and counts the outcomes as "status CODE" (CODE empty for
// a 2xx); every 503 must carry Retry-After and be problem+json.
func tally(t *testing.T, probes []outageProbe, rounds int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range rounds {
		for _, p := range probes {
			r := p.do()
			key := fmt.Sprintf("%s %d %s", p.name, r.status, r.str("code"))
			out[key]++
			if r.status == http.StatusServiceUnavailable {
				if r.header.Get("Retry-After") == "" || r.header.Get("Content-Type") != "application/problem+json" {
					t.Errorf("%s: 503 without Retry-After or problem+json: %v %s", p.name, r.header, r.raw)
				}
			}
		}
	}
	return out
}

// onlyUnavailable fails unless every probe was answered 503 UNAVAILABLE in every round.
func onlyUnavailable(t *testing.T, probes []outageProbe, rounds int, got map[string]int) {
	t.Helper()
	want := map[string]int{}
	for _, p := range probes {
		want[p.name+" 503 UNAVAILABLE"] = rounds
	}
	if describe(got) != describe(want) {
		t.Errorf("outcomes: %s\nwant: %s", describe(got), describe(want))
	}
}

func describe(m map[string]int) string {
	var lines []string
	for k, n := range m {
		lines = append(lines, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(lines)
	return strings.Join(lines, "; ")
}

// PostgreSQL stopped: every request is 503 with Retry-After (never a 500), nothing half-written,
// and the server recovers by itself once the database is back.
func TestPostgresDownIs503AndRecovers(t *testing.T) {
	e, px := startBehindProxy(t)
	s, cars := e.garage(2)
	before := e.lock(s.access, cars[0].id, "lock")
	accepted := before.str("id")
	scVehicle := cars[1].sc
	sessions, commands := e.count("sessions"), e.commandRows()

	px.down()
	probes := outageProbes(e, s, cars[1].id, scVehicle)
	got := tally(t, probes, 3)
	onlyUnavailable(t, probes, 3, got)
	t.Logf("PostgreSQL down: %s", describe(got))

	px.up()
	start := time.Now()
	waitFor(t, "recovery", func() bool { return e.do("GET", "/v1/me", nil, s.access).status == http.StatusOK })
	t.Logf("recovered %s after PostgreSQL came back", time.Since(start).Round(time.Millisecond))
	if n := e.count("sessions"); n != sessions {
		t.Errorf("sessions: %d, want %d (a refused sign-in or refresh wrote nothing)", n, sessions)
	}
	if n := e.commandRows(); n != commands {
		t.Errorf("commands: %d, want %d (a refused submission wrote nothing)", n, commands)
	}
	e.expect(e.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": s.refresh}, ""), http.StatusOK, "")
	if st := e.final(s.access, accepted).str("status"); !isFinal(st) {
		t.Fatalf("the command accepted before the outage is %s", st)
	}
	after := e.lock(s.access, cars[1].id, "lock")
	if st := e.final(s.access, after.str("id")).str("status"); st != "succeeded" {
		t.Fatalf("a command after the outage ended %s", st)
	}
}

// PostgreSQL blackholed (packets dropped, nothing refused): every request still ends, as a 503,
// within its deadline instead of hanging until TCP gives up (about 15 minutes on Linux).
func TestPostgresBlackholeEndsRequestsWithinTheirDeadline(t *testing.T) {
	const deadline = time.Second
	e, px := startBehindProxy(t, func(v map[string]string) { v["BETTERKEY_REQUEST_TIMEOUT"] = deadline.String() })
	s, cars := e.garage(1)
	px.hole()
	var worst time.Duration
	probes := outageProbes(e, s, cars[0].id, cars[0].sc)
	timed := make([]outageProbe, 0, len(probes))
	for _, p := range probes {
		timed = append(timed, outageProbe{p.name, func() response {
			start := time.Now()
			r := p.do()
			worst = max(worst, time.Since(start))
			return r
		}})
	}
	got := tally(t, timed, 1)
	onlyUnavailable(t, timed, 1, got)
	// Not a speed check: without the deadline these requests would hang for minutes, so ten
	// times the deadline tells a bounded request from a hung one on any machine.
	if worst > 10*deadline {
		t.Errorf("a request took %s with a %s deadline: it hung", worst, deadline)
	}
	t.Logf("PostgreSQL blackholed (deadline %s): %s; slowest request %s", deadline, describe(got), worst.Round(time.Millisecond))
	px.up()
	waitFor(t, "recovery", func() bool { return e.do("GET", "/v1/me", nil, s.access).status == http.StatusOK })
}

// PostgreSQL restarted under the server (every backend terminated, as a restart or a failover
// does): requests that meet a dead connection are 503, never 500, and the pool reconnects alone.
func TestPostgresRestartIsNever500(t *testing.T) {
	e := startServer(t)
	s, cars := e.garage(1)
	probes := outageProbes(e, s, cars[0].id, cars[0].sc)
	outcomes := map[string]int{}
	for range 3 {
		e.withDB(func(c *pgx.Conn) {
			if _, err := c.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
				t.Fatal(err)
			}
		})
		for k, n := range tally(t, probes, 1) {
			outcomes[k] += n
		}
	}
	for k := range outcomes { // the refresh token and the fake nonce are refused after their first use
		if f := strings.Fields(k); f[1] >= "500" && f[1] != "503" {
			t.Errorf("after a restart: %s", k)
		}
	}
	t.Logf("PostgreSQL restarted 3 times: %s", describe(outcomes))
}

// PostgreSQL stopped under steady load (50 req/s of authenticated reads): while it is down only
// 503 with Retry-After, and 2xx again as soon as it is back. The outage lasts 2 s in the suite;
// BETTERKEY_FAULT_OUTAGE sets another length for a measurement (the target is 10 s).
func TestPostgresOutageUnderLoad(t *testing.T) {
	outage := 2 * time.Second
	if v := os.Getenv("BETTERKEY_FAULT_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		outage = d
	}
	e, px := startBehindProxy(t)
	s, _ := e.garage(1)
	var (
		mu       sync.Mutex
		phase    = "before"
		outcomes = map[string]int{}
		firstOK  time.Time
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond) // 50 req/s
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			path := []string{"/v1/me", "/v1/vehicles"}[i%2]
			wg.Go(func() {
				r := e.do("GET", path, nil, s.access)
				mu.Lock()
				defer mu.Unlock()
				outcomes[fmt.Sprintf("%s %d", phase, r.status)]++
				if r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
					t.Errorf("503 without Retry-After")
				}
				if phase == "after" && r.status == http.StatusOK && firstOK.IsZero() {
					firstOK = time.Now()
				}
			})
		}
	})
	time.Sleep(time.Second)
	mu.Lock()
	phase = "down"
	mu.Unlock()
	px.down()
	time.Sleep(outage)
	mu.Lock()
	phase = "after"
	mu.Unlock()
	px.up()
	back := time.Now()
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	for k := range outcomes {
		if f := strings.Fields(k); f[1] != "200" && f[1] != "503" {
			t.Errorf("%s ×%d: only 200 and 503 allowed", k, outcomes[k])
		}
	}
	if outcomes["down 503"] == 0 || outcomes["after 200"] == 0 || firstOK.IsZero() {
		t.Fatalf("outcomes %s: want 503s while down and 200s after", describe(outcomes))
	}
	t.Logf("PostgreSQL down %s under 50 req/s: %s; first 200 %s after it came back",
		outage, describe(outcomes), firstOK.Sub(back).Round(time.Millisecond))
}
