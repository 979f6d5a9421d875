package e2e

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
)

// browser follows nothing by itself, so each redirect of the Connect flow can be checked.
var browser = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// hop fetches u and returns the Location it redirects to.
func (e *env) hop(u string) *url.URL {
	e.t.Helper()
	res, err := browser.Get(u)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	e.leaks.observe(res.Request, res, nil)
	if res.StatusCode != http.StatusFound && res.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("GET %s: status %d, want a redirect", u, res.StatusCode)
	}
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	return loc
}

// connect runs Smartcar Connect as the owner's browser and app would: our authorize URL, the
// simulator's consent (with an optional simulated outcome), our callback, back to the app, and
// the app confirming the link with its own bearer token. It returns the outcome as the app return
// URL's query would have carried it before confirmation existed (status=linked, code=LINKED and
// the vehicle count on success, status=error with the problem code of the callback or of the
// confirmation otherwise; link holds the link token once there was one), and the callback URL
// (for replays).
func (e *env) connect(access string, outcome string) (url.Values, string) {
	e.t.Helper()
	q, callback := e.consent(access, outcome)
	if q.Get("status") != "pending" {
		return q, callback
	}
	out := url.Values{"link": {q.Get("link")}}
	r := e.do("POST", "/v1/vehicles/connect/complete", map[string]any{"link": q.Get("link")}, access)
	if r.status != http.StatusOK {
		out.Set("status", "error")
		out.Set("code", r.str("code"))
		return out, callback
	}
	vehicles, _ := r.body["vehicles"].([]any)
	out.Set("status", "linked")
	out.Set("code", "LINKED")
	out.Set("vehicles", strconv.Itoa(len(vehicles)))
	return out, callback
}

// consent runs the browser half of Connect for the user of access: our authorize URL, the
// simulator's consent, our callback. It returns the app return URL's query (status=pending,
// code=CONFIRM_REQUIRED and the link, or status=error and a code) and the callback URL.
func (e *env) consent(access string, outcome string) (url.Values, string) {
	e.t.Helper()
	r := e.do("POST", "/v1/vehicles/connect", map[string]any{}, access)
	e.expect(r, http.StatusOK, "")
	authorize := r.str("authorize_url")
	if outcome != "" {
		authorize += "&sim_outcome=" + outcome
	}
	callback := e.hop(authorize)
	if !strings.HasPrefix(callback.String(), e.servers.HTTPURL()+"/v1/smartcar/callback") {
		e.t.Fatalf("consent redirected to %s", callback)
	}
	back := e.hop(callback.String())
	if back.Scheme != "betterkey" {
		e.t.Fatalf("callback redirected to %s, want the app", back)
	}
	q := back.Query()
	if q.Get("status") == "pending" && (q.Get("code") != "CONFIRM_REQUIRED" || q.Get("link") == "") {
		e.t.Fatalf("callback redirected to the app with %v, want CONFIRM_REQUIRED and a link", q)
	}
	return q, callback.String()
}

func (e *env) vehicles(access string) []map[string]any {
	e.t.Helper()
	r := e.do("GET", "/v1/vehicles", nil, access)
	e.expect(r, http.StatusOK, "")
	var out []map[string]any
	for _, v := range r.body["vehicles"].([]any) {
		out = append(out, v.(map[string]any))
	}
	return out
}

func TestConnectListStatusDisconnect(t *testing.T) {
	e := startServer(t)
	owner := e.sc.CreateUser(smartcarsim.DefaultFleet()...)
	if err := e.sc.SetConsentUser(owner.ID); err != nil {
		t.Fatal(err)
	}
	s := e.signIn(applesim.NewSubject(), "install-1", "phone")
	q, callback := e.connect(s.access, "")
	if q.Get("status") != "linked" || q.Get("code") != "LINKED" || q.Get("vehicles") != "2" {
		t.Fatalf("connect ended with %v", q)
	}
	list := e.vehicles(s.access)
	if len(list) != 2 {
		t.Fatalf("%d vehicles, want 2", len(list))
	}
	for _, v := range list {
		if v["status"] != "active" || v["make"] == "" || len(v["capabilities"].([]any)) == 0 {
			t.Fatalf("vehicle %v", v)
		}
	}
	id := list[0]["id"].(string)

	// A replayed callback changes nothing and reports the state as used; a replayed
	// confirmation is refused.
	back := e.hop(callback)
	if back.Query().Get("code") != "CONNECT_STATE_INVALID" || back.Query().Has("link") || len(e.vehicles(s.access)) != 2 {
		t.Fatalf("replayed callback: %v", back.Query())
	}
	e.expect(e.do("POST", "/v1/vehicles/connect/complete", map[string]any{"link": q.Get("link")}, s.access), http.StatusNotFound, "CONNECT_LINK_INVALID")
	if n := e.count("pending_links"); n != 0 {
		t.Fatalf("%d pending links left after the link was used", n)
	}

	st := e.do("GET", "/v1/vehicles/"+id+"/status", nil, s.access)
	e.expect(st, http.StatusOK, "")
	if _, ok := st.body["locked"].(bool); !ok || st.str("observed_at") == "" || st.str("source") != "live" {
		t.Fatalf("status %s", st.raw)
	}

	// Someone else's vehicle does not exist for them.
	other := e.signIn(applesim.NewSubject(), "install-2", "phone")
	e.expect(e.do("GET", "/v1/vehicles/"+id, nil, other.access), http.StatusNotFound, "NOT_FOUND")
	e.expect(e.do("GET", "/v1/vehicles/"+id+"/status", nil, other.access), http.StatusNotFound, "NOT_FOUND")
	e.expect(e.do("DELETE", "/v1/vehicles/"+id, nil, other.access), http.StatusNotFound, "NOT_FOUND")

	e.expect(e.do("DELETE", "/v1/vehicles/"+id, nil, s.access), http.StatusNoContent, "")
	if n := len(e.vehicles(s.access)); n != 1 {
		t.Fatalf("%d vehicles after disconnect, want 1", n)
	}
	e.expect(e.do("DELETE", "/v1/vehicles/"+list[1]["id"].(string), nil, s.access), http.StatusNoContent, "")
	if c := e.count("connections"); c != 0 {
		t.Fatalf("%d connections left after the last vehicle went", c)
	}
	if c := e.count("sealed_secrets"); c != 0 {
		t.Fatalf("%d sealed secrets left after the last vehicle went", c)
	}
	if st := e.sc.Stats(); st.Disconnects != 2 || (st.AppTokens == 0) == !userTokens() {
		t.Fatalf("Smartcar saw %d disconnects and issued %d application tokens (API %q)", st.Disconnects, st.AppTokens, smartcarAPI())
	}
	e.assertNoTokenLeaks()
}

func TestConnectRejections(t *testing.T) {
	e := startServer(t)
	if err := e.sc.SetConsentUser(e.sc.CreateUser(smartcarsim.DefaultFleet()...).ID); err != nil {
		t.Fatal(err)
	}
	s := e.signIn(applesim.NewSubject(), "install-1", "phone")
	for _, tc := range []struct{ outcome, code string }{
		{"access_denied", "CONNECT_ACCESS_DENIED"},
		{"vehicle_incompatible", "VEHICLE_INCOMPATIBLE"},
		{"no_vehicles", "NO_VEHICLES"},
		{"invalid_subscription", "INVALID_SUBSCRIPTION"},
		{"server_error", "CONNECT_FAILED"},
		{"configuration_error", "CONNECT_FAILED"},
	} {
		t.Run(tc.outcome, func(t *testing.T) {
			q, _ := e.connect(s.access, tc.outcome)
			if q.Get("status") != "error" || q.Get("code") != tc.code {
				t.Fatalf("got %v, want error %s", q, tc.code)
			}
		})
	}
	cb := e.servers.HTTPURL() + "/v1/smartcar/callback"
	for name, query := range map[string]string{
		"unknown state": "?code=abc&state=unknown",
		"no state":      "?code=abc",
	} {
		t.Run(name, func(t *testing.T) {
			if q := e.hop(cb + query).Query(); q.Get("code") != "CONNECT_STATE_INVALID" {
				t.Fatalf("got %v", q)
			}
		})
	}
	t.Run("no code", func(t *testing.T) {
		r := e.do("POST", "/v1/vehicles/connect", map[string]any{}, s.access)
		state := mustQuery(t, r.str("authorize_url")).Get("state")
		if q := e.hop(cb + "?state=" + url.QueryEscape(state)).Query(); q.Get("code") != "CONNECT_CODE_MISSING" {
			t.Fatalf("got %v", q)
		}
	})
	t.Run("token endpoint failing", func(t *testing.T) {
		e.sc.SetFault(smartcarsim.EndpointToken, smartcarsim.Fault{Status: http.StatusInternalServerError, Times: 10})
		defer e.sc.ClearFaults()
		q, _ := e.connect(s.access, "")
		if q.Get("status") != "error" || q.Get("code") != "UPSTREAM_UNAVAILABLE" {
			t.Fatalf("got %v", q)
		}
	})
	if c := e.count("connections") + e.count("vehicles") + e.count("sealed_secrets"); c != 0 {
		t.Fatalf("failed connects stored %d rows", c)
	}
	e.expect(e.do("POST", "/v1/vehicles/connect", nil, ""), http.StatusUnauthorized, "UNAUTHENTICATED")
}

// TestConnectLoginCSRF plays the attack over real HTTP: Alice starts Connect on her account and
// gets Bob to consent at Smartcar with his car in his browser. The callback links nothing, the
// link it sends to the app is of no use to Bob's app, Alice's app never sees it, and no car ends
// up on either account.
func TestConnectLoginCSRF(t *testing.T) {
	e := startServer(t)
	bobsAccount := e.sc.CreateUser(smartcarsim.VehicleSpec{Make: "BMW", Model: "i4", Year: 2024})
	if err := e.sc.SetConsentUser(bobsAccount.ID); err != nil {
		t.Fatal(err)
	}
	alice := e.signIn(applesim.NewSubject(), "install-alice", "phone")
	bob := e.signIn(applesim.NewSubject(), "install-bob", "phone")
	before := e.sc.Stats().CodeExchanges

	q, _ := e.consent(alice.access, "") // Alice's authorize URL, opened and consented to by Bob
	if q.Get("status") != "pending" || q.Get("code") != "CONFIRM_REQUIRED" {
		t.Fatalf("callback: %v", q)
	}
	if got := e.sc.Stats().CodeExchanges - before; got != 0 {
		t.Fatalf("the callback exchanged %d codes, want none before confirmation", got)
	}
	if c := e.count("connections") + e.count("vehicles") + e.count("sealed_secrets"); c != 0 {
		t.Fatalf("the callback stored %d rows of a link", c)
	}
	complete := func(link, access string) {
		t.Helper()
		e.expect(e.do("POST", "/v1/vehicles/connect/complete", map[string]any{"link": link}, access), http.StatusNotFound, "CONNECT_LINK_INVALID")
	}
	// Alice's app does not have the link; guessing gets nowhere.
	complete("", alice.access)
	complete("guess", alice.access)
	// Bob's app has it, but the flow is Alice's; the attempt burns the link, so even a leaked
	// copy is useless to Alice afterwards.
	complete(q.Get("link"), bob.access)
	complete(q.Get("link"), alice.access)
	e.expect(e.do("POST", "/v1/vehicles/connect/complete", map[string]any{"link": q.Get("link")}, ""), http.StatusUnauthorized, "UNAUTHENTICATED")

	if n, m := len(e.vehicles(alice.access)), len(e.vehicles(bob.access)); n+m != 0 {
		t.Fatalf("alice has %d vehicles, bob %d; want none", n, m)
	}
	if got := e.sc.Stats().CodeExchanges - before; got != 0 {
		t.Fatalf("%d codes were exchanged, want none", got)
	}
	if c := e.count("connections") + e.count("vehicles") + e.count("sealed_secrets") + e.count("pending_links"); c != 0 {
		t.Fatalf("%d rows left after the refused attack", c)
	}

	// Bob running Connect himself still works.
	if q, _ := e.connect(bob.access, ""); q.Get("status") != "linked" {
		t.Fatalf("bob's own connect: %v", q)
	}
	if n := len(e.vehicles(bob.access)); n != 1 {
		t.Fatalf("bob has %d vehicles, want 1", n)
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// TestRefreshOnceAcrossReplicas: two server instances on one PostgreSQL, 50 parallel requests
// that all find the access token rejected; exactly one refresh reaches Smartcar and every request
// succeeds.
func TestRefreshOnceAcrossReplicas(t *testing.T) {
	a := startServer(t)
	b := a.another()
	owner := a.sc.CreateUser(smartcarsim.VehicleSpec{Make: "TESLA", Model: "Model 3", Year: 2023})
	if err := a.sc.SetConsentUser(owner.ID); err != nil {
		t.Fatal(err)
	}
	s := a.signIn(applesim.NewSubject(), "install-1", "phone")
	if q, _ := a.connect(s.access, ""); q.Get("status") != "linked" {
		t.Fatalf("connect: %v", q)
	}
	id := a.vehicles(s.access)[0]["id"].(string)
	before := a.sc.Stats().Refreshes
	a.sc.ExpireAccessTokens()

	const n = 50
	var wg sync.WaitGroup
	start := make(chan struct{})
	statuses := make([]int, n)
	for i := range n {
		srv := a
		if i%2 == 1 {
			srv = b
		}
		wg.Go(func() {
			<-start
			statuses[i] = srv.do("GET", "/v1/vehicles/"+id+"/status", nil, s.access).status
		})
	}
	close(start)
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusOK {
			t.Errorf("request %d: status %d", i, st)
		}
	}
	// With v3 nothing needs refreshing: the vehicle calls act as the application.
	want := 0
	if userTokens() {
		want = 1
	}
	if got := a.sc.Stats().Refreshes - before; got != int64(want) {
		t.Fatalf("%d refreshes reached Smartcar, want exactly %d", got, want)
	}
	// The replicas' own metrics agree: one renewal across both.
	if renewed := int(metricSum(`betterkey_vehicle_token_refreshes_total{outcome="renewed"}`, a, b)); renewed != want {
		t.Fatalf("metrics count %d renewals, want %d", renewed, want)
	}
}

func TestRevokedConsentNeedsReauth(t *testing.T) {
	e := startServer(t)
	owner := e.sc.CreateUser(smartcarsim.VehicleSpec{Make: "FORD", Model: "Mustang Mach-E", Year: 2022})
	if err := e.sc.SetConsentUser(owner.ID); err != nil {
		t.Fatal(err)
	}
	s := e.signIn(applesim.NewSubject(), "install-1", "phone")
	e.connect(s.access, "")
	id := e.vehicles(s.access)[0]["id"].(string)
	if err := e.sc.RevokeConsent(owner.ID); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/v1/vehicles/"+id+"/status", nil, s.access)
	if r.status != http.StatusConflict || (r.str("code") != "REAUTH_REQUIRED" && r.str("code") != "CONSENT_REVOKED") {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	if st := e.vehicles(s.access)[0]["status"]; st != "needs_reauth" && st != "revoked" {
		t.Fatalf("vehicle status %v, want needs_reauth or revoked", st)
	}
	// Reconnecting the same Smartcar account heals the connection in place; the vehicle keeps
	// its id, so the app's references stay valid.
	if q, _ := e.connect(s.access, ""); q.Get("status") != "linked" {
		t.Fatalf("reconnect: %v", q)
	}
	list := e.vehicles(s.access)
	if len(list) != 1 || list[0]["id"] != id || list[0]["status"] != "active" {
		t.Fatalf("after reconnect: %v", list)
	}
	e.expect(e.do("GET", "/v1/vehicles/"+id+"/status", nil, s.access), http.StatusOK, "")
}

// assertNoTokenLeaks scans every app-facing response and every database column for every token
// value the Smartcar simulator issued.
func (e *env) assertNoTokenLeaks() {
	e.t.Helper()
	tokens := e.sc.IssuedTokens()
	if len(tokens) == 0 {
		e.t.Fatal("the simulator issued no tokens; the scan would pass vacuously")
	}
	e.mu.Lock()
	bodies := strings.Join(e.bodies, "\n")
	e.mu.Unlock()
	dump := e.dumpDatabase()
	for _, tok := range tokens {
		if strings.Contains(bodies, tok) {
			e.t.Error("a Smartcar token appears in an app-facing response")
		}
		if strings.Contains(dump, tok) {
			e.t.Error("a Smartcar token appears in clear in the database")
		}
		if strings.Contains(e.logs.String(), tok) {
			e.t.Error("a Smartcar token appears in the logs")
		}
	}
}

// dumpDatabase renders every row of every table as JSON text.
func (e *env) dumpDatabase() string {
	e.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
	if err != nil {
		e.t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	for _, tbl := range tables {
		rows, err := conn.Query(ctx, "SELECT row_to_json(t)::text FROM "+pgx.Identifier{tbl}.Sanitize()+" t")
		if err != nil {
			e.t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			e.t.Fatal(err)
		}
		b.WriteString(strings.Join(lines, "\n"))
	}
	return b.String()
}

// TestSlowTokenEndpoint: Smartcar's token endpoint answering later than our timeout ends the
// Connect with a clear error and stores nothing.
func TestSlowTokenEndpoint(t *testing.T) {
	e := startServer(t)
	if err := e.sc.SetConsentUser(e.sc.CreateUser(smartcarsim.DefaultFleet()...).ID); err != nil {
		t.Fatal(err)
	}
	s := e.signIn(applesim.NewSubject(), "install-1", "phone")
	e.sc.SetLatency(smartcarsim.EndpointToken, time.Minute)
	q, _ := e.connect(s.access, "")
	if q.Get("status") != "error" || (q.Get("code") != "UPSTREAM_TIMEOUT" && q.Get("code") != "UPSTREAM_UNAVAILABLE") {
		t.Fatalf("got %v", q)
	}
	if c := e.count("connections") + e.count("vehicles") + e.count("sealed_secrets"); c != 0 {
		t.Fatalf("a timed-out connect stored %d rows", c)
	}
}
