package apple_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/apple"
	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/test/fakeclock"
)

const (
	phoneAud = "com.betterkey.app"
	watchAud = "com.betterkey.app.watchkitapp"
)

// start is a fixed instant so token times in failures are readable.
var start = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

// env is one simulated Apple behind real HTTP and a verifier pointed at it.
type env struct {
	sim   *applesim.Simulator
	srv   *httptest.Server
	v     *apple.Verifier
	clock *fakeclock.Clock
	cfg   apple.Config
}

// newEnv mounts the simulator under /apple (as the dev server does) and builds a verifier for the
// phone and watch audiences; edit adjusts the config before New.
func newEnv(t testing.TB, edit func(*apple.Config)) *env {
	t.Helper()
	clock := fakeclock.New(start)
	sim, err := applesim.New(applesim.Options{Keys: 2, Now: clock.Now, DefaultAudience: phoneAud})
	if err != nil {
		t.Fatalf("new simulator: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/apple/", http.StripPrefix("/apple", sim.Handler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	cfg := apple.Config{
		JWKSURL:   srv.URL + "/apple/auth/keys",
		Audiences: []string{phoneAud, watchAud},
	}
	if edit != nil {
		edit(&cfg)
	}
	v, err := apple.New(cfg, srv.Client())
	if err != nil {
		t.Fatalf("new verifier: %v", err)
	}
	v.SetNow(clock.Now)
	return &env{sim: sim, srv: srv, v: v, clock: clock, cfg: cfg}
}

// mint signs a token with test defaults (phone audience, a nonce claim, a relay email).
func (e *env) mint(t testing.TB, o applesim.MintOptions) string {
	t.Helper()
	if o.Audience == "" {
		o.Audience = phoneAud
	}
	if o.Nonce == "" {
		o.Nonce = applesim.NonceClaim("raw-nonce")
	}
	tok, err := e.sim.Mint(o)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

// fetches reads the simulator's JWKS request counter.
func (e *env) fetches() int64 { return e.sim.JWKSFetches() }
