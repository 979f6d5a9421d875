// Package e2e drives the real server graph (the same fx options main uses) over real HTTP: REST
// for the app, Connect for internal tools, a real PostgreSQL, and the simulators over loopback.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/postgres/pgtest"
	"github.com/betterkey/backend/adapters/sessiontoken"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/app/vehiclelink"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
	"github.com/betterkey/backend/cmd/betterkeyd/wiring"
)

// The apps' client ids, and the team and key of the Sign in with Apple client key.
const (
	audience      = "com.betterkey.app"
	watchAudience = "com.betterkey.app.watchkitapp"
	appleTeamID   = "TEAME2E001"
	appleKeyID    = "KEYE2E0001"
)

// Canary secrets: recognisable values the log and response scans look for.
const (
	canaryAdminToken = "CANARY-ADMIN-TOKEN-0123456789abcdef0123456789"
	canaryDBPassword = "CANARY-DB-PASSWORD"
)

// syncBuffer collects every log line of the server under test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// infra is what server instances share: the simulators, the database and the keys.
type infra struct {
	apple      *applesim.Simulator
	appleURL   string
	smartcar   *smartcarsim.Simulator
	scURL      string
	dbURL      string
	keyring    string
	signingKey string
	// appleKey is the team's Sign in with Apple client key (.p8), registered with the simulator.
	appleKey string
}

// env is one running server with its simulators and the material the scans need.
type env struct {
	t       testing.TB
	leaks   leakScan
	infra   *infra
	apple   *applesim.Simulator
	sc      *smartcarsim.Simulator
	servers *wiring.Servers
	link    *vehiclelink.Service
	dbURL   string
	logs    *syncBuffer
	// signingKey is the session signing key, a secret the scans look for.
	signingKey string
	mu         sync.Mutex
	bodies     []string // every response body seen
}

type option func(map[string]string)

// freeAddr reserves a loopback port for a server whose address must be known before it starts
// (the Smartcar redirect URI names it).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func newInfra(t testing.TB, redirectURI string) *infra {
	t.Helper()
	sim, err := applesim.New(applesim.Options{DefaultAudience: audience})
	if err != nil {
		t.Fatal(err)
	}
	p8, err := sim.GenerateClientKey(appleTeamID, appleKeyID, audience, watchAudience)
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim.Handler())
	t.Cleanup(simSrv.Close)
	t.Cleanup(sim.Close)
	sc, err := smartcarsim.New(smartcarsim.Options{
		ClientID: config.DevSmartcarClientID, ClientSecret: config.DevSmartcarClientSecret,
		RedirectURIs: []string{redirectURI}, ManagementToken: config.DevSmartcarManagementToken,
	})
	if err != nil {
		t.Fatal(err)
	}
	scSrv := httptest.NewServer(sc.Handler())
	t.Cleanup(scSrv.Close)
	t.Cleanup(sc.Close)
	return &infra{
		apple: sim, appleURL: simSrv.URL, smartcar: sc, scURL: scSrv.URL, dbURL: pgtest.NewURL(t),
		keyring: filepath.Join(t.TempDir(), "keyring.json"), signingKey: sessiontoken.GenerateKey().Reveal(),
		appleKey: string(p8),
	}
}

// startServer starts one server on fresh infrastructure. The address is reserved before the
// server exists (the Smartcar redirect URI names it), so a parallel test can take the port in
// between; then it starts again on another port, with infrastructure of its own.
func startServer(t testing.TB, opts ...option) *env {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		e, err := tryStartOn(t, newInfra(t, "http://"+addr+"/v1/smartcar/callback"), addr, opts...)
		if err == nil {
			return e
		}
		if attempt < 3 && (errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")) {
			continue
		}
		t.Fatalf("start server: %v", err)
	}
}

// another starts a second server instance (a second replica) on e's infrastructure.
func (e *env) another(opts ...option) *env {
	e.t.Helper()
	return startOn(e.t, e.infra, freeAddr(e.t), opts...)
}

// withBurstAdmission lifts the overload limits for a test that fires more requests at one
// replica at one instant than the defaults admit (64 + 16 slots, 64 queued for 5 ms): such a burst
// is shed with 503 OVERLOADED by design, and the test is about what lies behind the limiter.
func withBurstAdmission() option {
	return func(v map[string]string) {
		v["BETTERKEY_ADMISSION_CONCURRENCY"] = "1024"
		v["BETTERKEY_ADMISSION_QUEUE"] = "1024"
		v["BETTERKEY_ADMISSION_WAIT"] = "1s"
	}
}

func startOn(t testing.TB, in *infra, addr string, opts ...option) *env {
	t.Helper()
	e, err := tryStartOn(t, in, addr, opts...)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	return e
}

// tryStartOn is startOn reporting a failed start instead of failing the test.
func tryStartOn(t testing.TB, in *infra, addr string, opts ...option) (*env, error) {
	t.Helper()
	e := &env{t: t, infra: in, apple: in.apple, sc: in.smartcar, logs: &syncBuffer{}, dbURL: in.dbURL, signingKey: in.signingKey}
	cfg := serverConfig(t, in, addr, opts...)
	// The server's own BETTERKEY_LOG_LEVEL (debug unless a test sets it, as the soak does);
	// benchmarks measure the server, not a test buffer growing.
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		t.Fatalf("BETTERKEY_LOG_LEVEL %q: %v", cfg.LogLevel, err)
	}
	if _, bench := t.(*testing.B); bench {
		level = max(level, slog.LevelWarn)
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: level}))
	app := fxtest.New(t, wiring.Options(cfg, log), fx.Populate(&e.servers, &e.link))
	t.Cleanup(func() { e.leaks.check(t, e.logs.String()) }) // after the stop below: the whole log
	ctx, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
	defer cancel()
	if err := app.Start(ctx); err != nil { // fx has stopped what had started
		return nil, err
	}
	t.Cleanup(app.RequireStop)
	return e, nil
}

// serverConfig is the configuration of a development server on in at addr, changed by opts.
func serverConfig(t testing.TB, in *infra, addr string, opts ...option) config.Config {
	t.Helper()
	vars := serverVars(in, addr, opts...)
	cfg, err := config.Load(func(k string) string { return vars[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// serverVars is serverConfig as BETTERKEY_* variables, the form a server process takes.
func serverVars(in *infra, addr string, opts ...option) map[string]string {
	vars := map[string]string{
		"BETTERKEY_ENV":                    "development",
		"BETTERKEY_HTTP_ADDR":              addr,
		"BETTERKEY_ADMIN_ADDR":             "127.0.0.1:0",
		"BETTERKEY_DATABASE_URL":           in.dbURL,
		"BETTERKEY_SIMULATORS":             "false",
		"BETTERKEY_KEYRING_FILE":           in.keyring,
		"BETTERKEY_APPLE_JWKS_URL":         in.appleURL + "/auth/keys",
		"BETTERKEY_APPLE_AUDIENCES":        audience + "," + watchAudience,
		"BETTERKEY_APPLE_TOKEN_URL":        in.appleURL + "/auth/token",
		"BETTERKEY_APPLE_TEAM_ID":          appleTeamID,
		"BETTERKEY_APPLE_KEY_ID":           appleKeyID,
		"BETTERKEY_APPLE_PRIVATE_KEY":      in.appleKey,
		"BETTERKEY_SESSION_SIGNING_KEY":    in.signingKey,
		"BETTERKEY_ADMIN_TOKENS":           canaryAdminToken,
		"BETTERKEY_SMARTCAR_CONNECT_URL":   in.scURL,
		"BETTERKEY_SMARTCAR_AUTH_URL":      in.scURL,
		"BETTERKEY_SMARTCAR_API_URL":       in.scURL,
		"BETTERKEY_SMARTCAR_CLIENT_ID":     config.DevSmartcarClientID,
		"BETTERKEY_SMARTCAR_CLIENT_SECRET": config.DevSmartcarClientSecret,
		"BETTERKEY_SMARTCAR_REDIRECT_URI":  "http://" + addr + "/v1/smartcar/callback",
		"BETTERKEY_APP_RETURN_URL":         "betterkey://vehicles/connected",
		"BETTERKEY_LOG_LEVEL":              "debug",
		"BETTERKEY_LOG_FORMAT":             "json",
	}
	if api := smartcarAPI(); api != "" {
		// The same suite speaks the API generation the environment names (BETTERKEY_SMARTCAR_API):
		// the task runs the vehicle flows once more with v3.
		withSmartcarAPI(api)(vars)
	}
	for _, o := range opts {
		o(vars)
	}
	return vars
}

// withSmartcarAPI points the server at the simulator's hosts for the given API generation; v3
// also needs the Application Management Token, to disconnect.
func withSmartcarAPI(api string) option {
	return func(vars map[string]string) {
		vars["BETTERKEY_SMARTCAR_API"] = api
		for _, k := range []string{"VEHICLE_URL", "IAM_URL", "MANAGEMENT_URL"} {
			vars["BETTERKEY_SMARTCAR_"+k] = vars["BETTERKEY_SMARTCAR_API_URL"] // the simulator serves every host
		}
		vars["BETTERKEY_SMARTCAR_WEBHOOK_SECRETS"] = config.DevSmartcarManagementToken
	}
}

// smartcarAPI is the Smartcar API generation the suite runs against: BETTERKEY_SMARTCAR_API, or
// empty for the server's default (v2).
func smartcarAPI() string { return os.Getenv("BETTERKEY_SMARTCAR_API") }

// userTokens reports whether the servers under test authenticate vehicle calls with the owner's
// tokens (v2), which then expire and are refreshed; v3 acts as the application instead.
func userTokens() bool { return smartcarAPI() != "v3" }

// response is a decoded reply.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
	// closed: the server asked to close the connection (Go's client drops "Connection: close"
	// from the header and reports it here).
	closed bool
}

func (r response) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

// do sends one REST request; body may be nil, a string (sent raw) or a value (sent as JSON).
func (e *env) do(method, path string, body any, bearer string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.servers.HTTPURL()+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return e.exchange(req, bearer)
}

// exchange sends req with an optional bearer token, records the body for the leak scans and
// decodes it.
func (e *env) exchange(req *http.Request, bearer string) response {
	e.t.Helper()
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.bodies = append(e.bodies, string(raw))
	e.mu.Unlock()
	checkContract(e.t, req, res, raw)
	e.leaks.observe(req, res, raw)
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw), closed: res.Close}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// expect fails unless r has the status and, for errors, the problem code.
func (e *env) expect(r response, status int, code string) {
	e.t.Helper()
	if r.status != status || (code != "" && r.str("code") != code) {
		e.t.Fatalf("got %d %s, want %d %s", r.status, r.raw, status, code)
	}
	if status >= 400 && r.header.Get("Content-Type") != "application/problem+json" {
		e.t.Fatalf("error without problem+json: %s", r.header.Get("Content-Type"))
	}
}

func (e *env) nonce() string {
	e.t.Helper()
	r := e.do("POST", "/v1/auth/nonce", nil, "")
	e.expect(r, http.StatusCreated, "")
	return r.str("nonce")
}

// mint asks the Apple simulator for an identity token carrying the hash of raw, as the iOS app
// would obtain one.
func (e *env) mint(sub, raw string, mut func(*applesim.MintOptions)) string {
	e.t.Helper()
	o := applesim.MintOptions{Subject: sub, Audience: audience, Nonce: applesim.NonceClaim(raw)}
	if mut != nil {
		mut(&o)
	}
	tok, err := e.apple.Mint(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

type session struct {
	access, refresh, userID string
}

func (e *env) signIn(sub, install, device string) session {
	e.t.Helper()
	n := e.nonce()
	r := e.do("POST", "/v1/auth/apple", map[string]string{
		"identity_token": e.mint(sub, n, nil), "nonce": n, "install_id": install, "device": device,
	}, "")
	e.expect(r, http.StatusOK, "")
	user, _ := r.body["user"].(map[string]any)
	id, _ := user["id"].(string)
	return session{access: r.str("access_token"), refresh: r.str("refresh_token"), userID: id}
}

// count returns the number of rows in table, read straight from PostgreSQL.
func (e *env) count(table string) int {
	e.t.Helper()
	return e.scalar("SELECT count(*) FROM " + pgx.Identifier{table}.Sanitize())
}

// withDB runs fn on a connection of its own to the server's database, for the checks that read
// what the server stored.
func (e *env) withDB(fn func(*pgx.Conn)) {
	e.t.Helper()
	conn, err := pgx.Connect(e.t.Context(), e.dbURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	fn(conn)
}

// scalar runs a query that answers one integer.
func (e *env) scalar(q string, args ...any) int {
	e.t.Helper()
	var n int
	e.withDB(func(conn *pgx.Conn) {
		if err := conn.QueryRow(e.t.Context(), q, args...).Scan(&n); err != nil {
			e.t.Fatal(err)
		}
	})
	return n
}
