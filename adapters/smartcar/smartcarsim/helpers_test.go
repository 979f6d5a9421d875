package smartcarsim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/test/fakeclock"
)

const appRedirect = "https://app.example/smartcar/callback?from=sim"

var start = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// env is a simulator mounted under /smartcar behind httptest, as the dev server mounts it.
type env struct {
	sim   *smartcarsim.Simulator
	base  string
	clock *fakeclock.Clock
}

func newEnv(t *testing.T, opts smartcarsim.Options) *env {
	t.Helper()
	clock := fakeclock.New(start)
	opts.Now = clock.Now
	if len(opts.RedirectURIs) == 0 {
		opts.RedirectURIs = []string{appRedirect, "https://other.example/cb"}
	}
	sim, err := smartcarsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/smartcar/", http.StripPrefix("/smartcar", sim.Handler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	return &env{sim: sim, base: srv.URL + "/smartcar", clock: clock}
}

// browser never follows redirects, so tests see Connect's 302.
var browser = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// reply is a decoded answer.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("decode %q: %v", raw, err)
		}
	}
	return r
}

// authorize opens Connect with the standard parameters overridden by kv.
func (e *env) authorize(t *testing.T, kv ...string) (reply, url.Values) {
	t.Helper()
	q := url.Values{"response_type": {"code"}, "client_id": {e.sim.ClientID()}, "redirect_uri": {appRedirect},
		"scope": {"required:control_security read_security read_vehicle_info"}, "state": {"st-123"}, "mode": {"test"}}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			q.Del(kv[i])
		} else {
			q.Set(kv[i], kv[i+1])
		}
	}
	req, _ := http.NewRequest(http.MethodGet, e.base+"/oauth/authorize?"+q.Encode(), nil)
	r := do(t, req)
	var back url.Values
	if loc := r.header.Get("Location"); loc != "" {
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		back = u.Query()
	}
	return r, back
}

// token posts a form to the token endpoint with Basic credentials (none when id is "").
func (e *env) token(t *testing.T, path, id, secret string, form url.Values) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	return do(t, req)
}

func (e *env) grant(t *testing.T, form url.Values) reply {
	t.Helper()
	return e.token(t, "/oauth/token", e.sim.ClientID(), e.sim.ClientSecret(), form)
}

// api calls the vehicle API with a bearer token.
func (e *env) api(t *testing.T, method, path, access, body string) reply {
	t.Helper()
	req, _ := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if access != "" {
		req.Header.Set("Authorization", "Bearer "+access)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return do(t, req)
}

// connect creates a user with the default fleet, consents and exchanges the code.
func (e *env) connect(t *testing.T, kv ...string) (smartcarsim.User, string, string) {
	t.Helper()
	u := e.sim.CreateUser(smartcarsim.DefaultFleet()...)
	_, back := e.authorize(t, append([]string{"sim_user", u.ID}, kv...)...)
	r := e.grant(t, url.Values{"grant_type": {"authorization_code"}, "code": {back.Get("code")}, "redirect_uri": {appRedirect}})
	if r.status != http.StatusOK {
		t.Fatalf("exchange: %d %s", r.status, r.raw)
	}
	return u, r.body["access_token"].(string), r.body["refresh_token"].(string)
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
