package smartcar_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/smartcar"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// hangAfterRead reads each request fully, reports it, and never answers until the client gives up.
func hangAfterRead(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	got := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv.URL, got
}

func TestCommandWithoutAnswerMayHaveExecuted(t *testing.T) {
	base, got := hangAfterRead(t)
	c := newClient(t, base, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.Security(ctx, domain.VehicleGrant{Access: domain.NewSecret("a")}, "veh", domain.SecurityUnlock)
		done <- err
	}()
	<-got
	cancel()
	err := <-done
	if diff := cmp.Diff(outcomeOf(t, err), outcome{Err: "UPSTREAM_TIMEOUT", Temporary: true, Maybe: true}); diff != "" {
		t.Errorf("(-got +want):\n%s", diff)
	}
	if !errors.Is(err, context.Canceled) || domain.AsUpstream(err).ShouldRetry() {
		t.Errorf("err = %v: want the cause kept and no automatic retry", err)
	}
}

func TestCommandTimeoutFromConfig(t *testing.T) {
	base, got := hangAfterRead(t)
	c := newClient(t, base, func(cfg *smartcar.Config) { cfg.Timeouts.Command = 50 * time.Millisecond })
	_, err := c.Security(t.Context(), domain.VehicleGrant{Access: domain.NewSecret("a")}, "veh", domain.SecurityLock)
	<-got
	if !errors.Is(err, context.DeadlineExceeded) || !domain.AsUpstream(err).MayHaveExecuted() {
		t.Errorf("err = %v, want a deadline that may have executed", err)
	}
}

func TestReadWithoutAnswerNeverMayHaveExecuted(t *testing.T) {
	base, got := hangAfterRead(t)
	c := newClient(t, base, nil)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-got; cancel() }()
	_, err := c.LockStatus(ctx, domain.VehicleGrant{Access: domain.NewSecret("a")}, "veh")
	if diff := cmp.Diff(outcomeOf(t, err), outcome{Err: "UPSTREAM_TIMEOUT", Temporary: true}); diff != "" {
		t.Errorf("(-got +want):\n%s", diff)
	}
}

func TestResetAfterSendMayHaveExecuted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, nil)
	_, err := c.Security(t.Context(), domain.VehicleGrant{Access: domain.NewSecret("a")}, "veh", domain.SecurityUnlock)
	if diff := cmp.Diff(outcomeOf(t, err), outcome{Err: "UPSTREAM_UNAVAILABLE", Temporary: true, Maybe: true}); diff != "" {
		t.Errorf("(-got +want):\n%s", diff)
	}
}

func TestRefusedConnectionWasNotExecuted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	_ = ln.Close()
	c := newClient(t, base, nil)
	_, err = c.Security(t.Context(), domain.VehicleGrant{Access: domain.NewSecret("a")}, "veh", domain.SecurityUnlock)
	if diff := cmp.Diff(outcomeOf(t, err), outcome{Err: "UPSTREAM_UNAVAILABLE", Temporary: true}); diff != "" {
		t.Errorf("command (-got +want):\n%s", diff)
	}
	if !domain.AsUpstream(err).ShouldRetry() {
		t.Error("ShouldRetry() = false for a command that was never sent")
	}
	_, err = c.Refresh(t.Context(), domain.NewSecret("r"))
	if u := domain.AsUpstream(err); u == nil || u.MayHaveExecuted() || !u.Temporary() {
		t.Errorf("refresh: %v, want temporary and not executed", err)
	}
}

func TestBoundedBodies(t *testing.T) {
	huge := `{"id":"` + strings.Repeat("x", 1<<20) + `"}`
	c := newClient(t, canned(t, 200, nil, huge), nil)
	if _, err := c.User(t.Context(), domain.NewSecret("a")); !errors.Is(err, domain.ErrUpstreamUnavailable) {
		t.Errorf("User with a 1 MiB answer = %v, want UPSTREAM_UNAVAILABLE", err)
	}
	if _, err := c.Refresh(t.Context(), domain.NewSecret("r")); !errors.Is(err, domain.ErrUpstreamUnavailable) {
		t.Errorf("Refresh with a 1 MiB answer = %v, want UPSTREAM_UNAVAILABLE", err)
	}
	if _, err := c.Security(t.Context(), domain.VehicleGrant{Access: domain.NewSecret("a")}, "v", domain.SecurityLock); err != nil {
		t.Errorf("a 200 to a command is success whatever the body: %v", err)
	}
	c = newClient(t, canned(t, 409, nil, huge), nil)
	if _, err := c.LockStatus(t.Context(), domain.VehicleGrant{Access: domain.NewSecret("a")}, "v"); !errors.Is(err, domain.ErrVehicleNotReady) {
		t.Errorf("409 with a 1 MiB body = %v, want classification by status", err)
	}
}

func TestRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		_, _ = w.Write([]byte(`{"id":"stolen"}`))
	}))
	t.Cleanup(other.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2.0/user":
			http.Redirect(w, r, other.URL+"/v2.0/user", http.StatusFound)
		case "/v2.0/vehicles/v/security":
			if r.Method == http.MethodPost {
				http.Redirect(w, r, "/v2.0/vehicles/v/security/", http.StatusTemporaryRedirect)
				return
			}
			http.Redirect(w, r, "/v2.0/vehicles/v/security/", http.StatusMovedPermanently)
		default:
			_, _ = w.Write([]byte(`{"isLocked":true}`))
		}
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, nil)
	_, err := c.User(t.Context(), domain.NewSecret("a"))
	if !errors.Is(err, domain.ErrUpstreamRejected) || elsewhere.Load() != 0 {
		t.Errorf("off-host redirect: err %v, %d requests reached the other host", err, elsewhere.Load())
	}
	if st, err := c.LockStatus(t.Context(), domain.VehicleGrant{Access: domain.NewSecret("a")}, "v"); err != nil || st.Locked == nil {
		t.Errorf("same-host redirect of a read: %+v, %v", st, err)
	}
	_, err = c.Security(t.Context(), domain.VehicleGrant{Access: domain.NewSecret("a")}, "v", domain.SecurityUnlock)
	if diff := cmp.Diff(outcomeOf(t, err), outcome{Err: "UPSTREAM_REJECTED", Status: 307}); diff != "" {
		t.Errorf("redirected command is not replayed (-got +want):\n%s", diff)
	}
}

// recorded is what a test upstream saw of one request.
type recorded struct {
	Method, Path, Query, Auth, ContentType, UnitSystem string
	Body                                               string
	UserAgentSet                                       bool
}

// recorder answers every request with answer and returns a function listing what it saw.
func recorder(t *testing.T, answer string) (string, func() []recorded) {
	t.Helper()
	var mu sync.Mutex
	var seen []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"),
			ContentType: r.Header.Get("Content-Type"), UnitSystem: r.Header.Get("SC-Unit-System"), Body: string(b),
			UserAgentSet: r.Header.Get("User-Agent") != ""})
		w.Header().Set("SC-Request-Id", "req-1")
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]recorded(nil), seen...)
	}
}

func TestTokenRequests(t *testing.T) {
	base, seen := recorder(t, `{"access_token":"acc","token_type":"Bearer","expires_in":7200,"refresh_token":"ref"}`)
	c := newClient(t, base, nil)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	smartcar.SetNow(c, func() time.Time { return now })
	ts, err := c.ExchangeCode(t.Context(), domain.NewSecret("the-code"))
	if err != nil {
		t.Fatal(err)
	}
	if ts.AccessToken.Reveal() != "acc" || ts.RefreshToken.Reveal() != "ref" ||
		!ts.AccessExpiresAt.Equal(now.Add(2*time.Hour)) || !ts.RefreshExpiresAt.Equal(now.Add(60*24*time.Hour)) {
		t.Errorf("token set %+v", ts.LogValue())
	}
	if _, err := c.Refresh(t.Context(), domain.NewSecret("old-ref")); err != nil {
		t.Fatal(err)
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("client-id:client-secret-canary"))
	form := "application/x-www-form-urlencoded"
	want := []recorded{
		{Method: "POST", Path: "/oauth/token", Auth: basic, ContentType: form, UserAgentSet: true,
			Body: url.Values{"grant_type": {"authorization_code"}, "code": {"the-code"}, "redirect_uri": {redirectURI}}.Encode()},
		{Method: "POST", Path: "/oauth/token", Auth: basic, ContentType: form, UserAgentSet: true,
			Body: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"old-ref"}}.Encode()},
	}
	if diff := cmp.Diff(seen(), want); diff != "" {
		t.Errorf("requests (-got +want):\n%s", diff)
	}
}

func TestAPIRequests(t *testing.T) {
	base, seen := recorder(t, `{"status":"success"}`)
	c := newClient(t, base, nil)
	access := domain.NewSecret("acc-token")
	id, err := c.Security(t.Context(), domain.VehicleGrant{Access: access}, "sc4a1b/01", domain.SecurityLock)
	if err != nil || id != "req-1" {
		t.Fatalf("Security = %q, %v", id, err)
	}
	if err := c.Disconnect(t.Context(), domain.VehicleGrant{Access: access}, "veh"); err != nil {
		t.Fatal(err)
	}
	want := []recorded{
		{Method: "POST", Path: "/v2.0/vehicles/sc4a1b/01/security", Auth: "Bearer acc-token", ContentType: "application/json",
			UnitSystem: "metric", Body: `{"action":"LOCK"}`, UserAgentSet: true},
		{Method: "DELETE", Path: "/v2.0/vehicles/veh/application", Auth: "Bearer acc-token", UnitSystem: "metric", UserAgentSet: true},
	}
	if diff := cmp.Diff(seen(), want); diff != "" {
		t.Errorf("requests (-got +want):\n%s", diff)
	}
}

func TestInvalidInputIsNeverSent(t *testing.T) {
	base, seen := recorder(t, `{}`)
	c := newClient(t, base, nil)
	a := domain.NewSecret("a")
	for name, err := range map[string]error{
		"action": func() error {
			_, err := c.Security(t.Context(), domain.VehicleGrant{Access: a}, "v", "HONK")
			return err
		}(),
		"vehicle":    func() error { _, err := c.LockStatus(t.Context(), domain.VehicleGrant{Access: a}, ""); return err }(),
		"access":     func() error { _, err := c.Vehicles(t.Context(), domain.Secret{}); return err }(),
		"code":       func() error { _, err := c.ExchangeCode(t.Context(), domain.Secret{}); return err }(),
		"disconnect": c.Disconnect(t.Context(), domain.VehicleGrant{Access: a}, ""),
		"refresh":    func() error { _, err := c.Refresh(t.Context(), domain.Secret{}); return err }(),
		"attributes": func() error { _, err := c.Attributes(t.Context(), domain.VehicleGrant{Access: a}, ""); return err }(),
		"command user": func() error {
			_, err := c.Security(t.Context(), domain.VehicleGrant{Access: domain.Secret{}}, "v", domain.SecurityLock)
			return err
		}(),
	} {
		if domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("%s: %v, want KindInvalid", name, err)
		}
	}
	if n := len(seen()); n != 0 {
		t.Errorf("%d requests were sent", n)
	}
}

func TestVehiclesPaging(t *testing.T) {
	var mu sync.Mutex
	var offsets []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		off := r.URL.Query().Get("offset")
		mu.Lock()
		offsets = append(offsets, off)
		mu.Unlock()
		switch off {
		case "":
			_, _ = w.Write([]byte(`{"vehicles":["a","b"],"paging":{"count":5,"offset":0}}`))
		case "2":
			_, _ = w.Write([]byte(`{"vehicles":["c","d"],"paging":{"count":5,"offset":2}}`))
		default: // claims a fifth vehicle it never lists: the adapter stops at the empty page
			_, _ = w.Write([]byte(`{"vehicles":[],"paging":{"count":5,"offset":4}}`))
		}
	}))
	t.Cleanup(srv.Close)
	got, err := newClient(t, srv.URL, nil).Vehicles(t.Context(), domain.NewSecret("a"))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([][]string{got, offsets}, [][]string{{"a", "b", "c", "d"}, {"", "2", "4"}}); diff != "" {
		t.Errorf("ids, offsets (-got +want):\n%s", diff)
	}
}

func TestLockStatusTimes(t *testing.T) {
	body := `{"isLocked":false,"doors":[{"type":"frontLeft","status":"open"}],"windows":[],"sunroof":[],"storage":[],"chargingPort":[]}`
	c := newClient(t, canned(t, 200, map[string]string{"SC-Data-Age": "2018-06-20T01:33:37.078Z", "SC-Fetched-At": "2018-06-20T01:48:37.078Z"}, body), nil)
	st, err := c.LockStatus(t.Context(), domain.VehicleGrant{Access: domain.NewSecret("a")}, "v")
	if err != nil {
		t.Fatal(err)
	}
	locked := false
	want := domain.LockStatus{Locked: &locked, Doors: []domain.Opening{{Type: "frontLeft", Status: domain.OpeningOpen}},
		Windows: []domain.Opening{}, Sunroofs: []domain.Opening{}, Storage: []domain.Opening{}, ChargingPorts: []domain.Opening{},
		ObservedAt: time.Date(2018, 6, 20, 1, 33, 37, 78e6, time.UTC), FetchedAt: time.Date(2018, 6, 20, 1, 48, 37, 78e6, time.UTC)}
	if diff := cmp.Diff(st, want); diff != "" {
		t.Errorf("(-got +want):\n%s", diff)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c = newClient(t, canned(t, 200, nil, `{"isLocked":true}`), nil)
	smartcar.SetNow(c, func() time.Time { return now })
	if st, err := c.LockStatus(t.Context(), domain.VehicleGrant{Access: domain.NewSecret("a")}, "v"); err != nil || !st.ObservedAt.Equal(now) || !st.FetchedAt.Equal(now) {
		t.Errorf("without headers: %+v, %v; want the receipt time", st, err)
	}
}

func TestAuthorizeURL(t *testing.T) {
	c := newClient(t, "https://connect.example", func(cfg *smartcar.Config) { cfg.Mode = smartcar.ModeSimulated })
	got := c.AuthorizeURL(domain.NewSecret("st@te"), ports.ConnectOptions{Make: "tesla", SingleSelect: true})
	want := "https://connect.example/oauth/authorize?approval_prompt=auto&client_id=client-id&make=TESLA&mode=simulated" +
		"&redirect_uri=https%3A%2F%2Fbetterkey.test%2Fv1%2Fsmartcar%2Fcallback" +
		"&response_type=code&scope=required%3Acontrol_security+read_security+read_vehicle_info&single_select=true&state=st%40te"
	if got != want {
		t.Errorf("AuthorizeURL =\n%s\nwant\n%s", got, want)
	}
}
