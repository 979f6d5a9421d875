package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/betterkey/backend/adapters/admission"
)

// TestOverloadShedsListsButServesCarKeysAndProbes fills the shared pool with vehicle lists that
// hold their slots, then checks what a saturated replica still answers: another list gets 503
// OVERLOADED with Retry-After, a lock goes through on the reserved share, probes are untouched.
func TestOverloadShedsListsButServesCarKeysAndProbes(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	a := &api{limiter: admission.New(admission.Limits{Concurrency: 2, Reserved: 1, Queue: 0, LongPolls: 1})}
	// The order of New's chain: the transport headers are set before admission refuses.
	hold := make(chan struct{})
	entered := make(chan struct{}, 8)
	blocking := func(c *gin.Context) {
		entered <- struct{}{}
		<-hold
		c.Status(http.StatusOK)
	}
	r := gin.New()
	r.Use(withRequestID, a.secureTransport, a.admit)
	r.GET("/v1/vehicles", blocking)
	r.POST(commandsRoute, func(c *gin.Context) { c.Status(http.StatusAccepted) })
	r.GET("/healthz", func(c *gin.Context) { c.Status(http.StatusOK) })
	r.GET("/readyz", func(c *gin.Context) { c.Status(http.StatusOK) })
	srv := httptest.NewServer(r)
	defer srv.Close()

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			res, err := http.Get(srv.URL + "/v1/vehicles")
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Errorf("held list: %d", res.StatusCode)
			}
		})
	}
	<-entered
	<-entered

	res, err := http.Get(srv.URL + "/v1/vehicles")
	if err != nil {
		t.Fatal(err)
	}
	p := decodeProblem(t, res)
	if res.StatusCode != http.StatusServiceUnavailable || p.Code != "OVERLOADED" || res.Header.Get("Retry-After") == "" ||
		res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("list past capacity: %d %q Retry-After %q Cache-Control %q; want 503 OVERLOADED with Retry-After, no-store",
			res.StatusCode, p.Code, res.Header.Get("Retry-After"), res.Header.Get("Cache-Control"))
	}
	res, err = http.Post(srv.URL+"/v1/vehicles/v1/commands", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("lock while lists fill the pool: %d, want it admitted on the reserved share", res.StatusCode)
	}
	for _, probe := range []string{"/healthz", "/readyz"} {
		res, err := http.Get(srv.URL + probe)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s under overload: %d", probe, res.StatusCode)
		}
	}
	close(hold)
	wg.Wait()
	if s, r, _, q := a.limiter.InFlight(); s+r+q != 0 {
		t.Fatalf("slots still taken after every request ended: %d shared, %d reserved, %d queued", s, r, q)
	}
}

func TestRouteClasses(t *testing.T) {
	for _, tc := range []struct {
		method, route string
		waits         bool
		class         admission.Class
		limited       bool
	}{
		{"GET", "/healthz", false, 0, false},
		{"GET", "/readyz", false, 0, false},
		{"GET", "/v1/openapi.json", false, 0, false},
		{"GET", "", false, 0, false},
		{"POST", commandsRoute, false, admission.CarKey, true},
		{"GET", commandsRoute, false, admission.Standard, true},
		{"GET", longPollRoute, true, admission.LongPoll, true},
		{"GET", longPollRoute, false, admission.Standard, true}, // a plain status read takes the shared pool
		{"GET", "/v1/vehicles", false, admission.Standard, true},
		{"POST", "/v1/auth/apple", false, admission.Standard, true},
		{"POST", smartcarWebhookPath, false, admission.Standard, true},
	} {
		class, limited := routeClass(tc.method, tc.route, tc.waits)
		if class != tc.class || limited != tc.limited {
			t.Errorf("%s %s (waits %v): class %d limited %v, want %d %v", tc.method, tc.route, tc.waits, class, limited, tc.class, tc.limited)
		}
	}
}

func decodeProblem(t *testing.T, res *http.Response) Problem {
	t.Helper()
	defer res.Body.Close()
	var p Problem
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
		t.Fatalf("problem body: %v", err)
	}
	return p
}
