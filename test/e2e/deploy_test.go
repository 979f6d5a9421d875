package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/cmd/betterkeyd/wiring"
)

// balancer is a round-robin load balancer that honours /readyz the way a cloud load balancer
// does: it probes every backend every 100 ms and routes only to those that answered 200 last.
// It never retries a request, so every failure a replica causes reaches the client.
type balancer struct {
	t     testing.TB
	ln    net.Listener
	srv   *http.Server
	proxy *httputil.ReverseProxy

	mu       sync.Mutex
	backends []*backend
	next     int
	failures atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
}

type backend struct {
	url   *url.URL
	ready atomic.Bool
}

type backendKey struct{}

func newBalancer(t testing.TB) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{t: t, ln: ln, stop: make(chan struct{})}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(pr.In.Context().Value(backendKey{}).(*backend).url)
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			b.failures.Add(1)
			t.Logf("balancer: %s %s: %v", r.Method, r.URL.Path, err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	b.wg.Go(b.probe)
	t.Cleanup(func() {
		close(b.stop)
		b.wg.Wait()
		_ = b.srv.Close()
	})
	return b
}

func (b *balancer) addr() string { return b.ln.Addr().String() }

func (b *balancer) add(rawURL string) {
	u, err := url.Parse(rawURL)
	if err != nil {
		b.t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = append(b.backends, &backend{url: u})
}

// ready reports whether the backend at rawURL is taking traffic.
func (b *balancer) ready(rawURL string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, be := range b.backends {
		if be.url.String() == rawURL {
			return be.ready.Load()
		}
	}
	return false
}

func (b *balancer) probe() {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		b.mu.Lock()
		list := append([]*backend(nil), b.backends...)
		b.mu.Unlock()
		for _, be := range list {
			res, err := client.Get(be.url.String() + "/readyz")
			ok := err == nil && res.StatusCode == http.StatusOK
			if err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
			}
			be.ready.Store(ok)
		}
		select {
		case <-b.stop:
			return
		case <-tick.C:
		}
	}
}

func (b *balancer) pick() *backend {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range b.backends {
		be := b.backends[b.next%len(b.backends)]
		b.next++
		if be.ready.Load() {
			return be
		}
	}
	return nil
}

func (b *balancer) serve(w http.ResponseWriter, r *http.Request) {
	be := b.pick()
	if be == nil {
		b.failures.Add(1)
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	b.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), backendKey{}, be)))
}

// counts is a thread-safe count of outcomes by label.
type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counts) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[k]++
}

func (c *counts) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// loadClient sends the load's requests; unlike the harness it never fails the test from its
// goroutines, it counts.
type loadClient struct {
	t        testing.TB // every answer is held to api/openapi.yaml, as the suite's others are
	base     string
	http     *http.Client
	outcomes counts
	failures counts // transport errors and 5xx, by endpoint
}

func (l *loadClient) call(name, method, path string, body any, bearer string) (int, map[string]any) {
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, l.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := l.http.Do(req)
	if err != nil {
		l.failures.add(name + ": " + err.Error())
		return 0, nil
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	checkContract(l.t, req, res, raw)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	l.outcomes.add(fmt.Sprintf("%s %d", name, res.StatusCode))
	if res.StatusCode >= 500 {
		l.failures.add(fmt.Sprintf("%s %d %s", name, res.StatusCode, raw))
	}
	return res.StatusCode, out
}

// A rolling deploy under steady mixed traffic loses nothing: three replicas behind a load
// balancer that honours /readyz are replaced one at a time (SIGTERM, wait, start a new process)
// while sign-ins, refreshes, vehicle lists, lock/unlock on many cars, status polls and webhook
// deliveries go on.
func TestRollingDeployDropsNothing(t *testing.T) {
	const (
		replicas = 3
		cars     = 8
		minLoad  = 20 * time.Second
	)
	lb := newBalancer(t)
	in := newInfra(t, "http://"+lb.addr()+"/v1/smartcar/callback")
	settings := func(v map[string]string) {
		v["BETTERKEY_SMARTCAR_REDIRECT_URI"] = "http://" + lb.addr() + "/v1/smartcar/callback"
		v["BETTERKEY_SHUTDOWN_DELAY"] = "1s" // ten probes of the balancer
		v["BETTERKEY_COMMAND_LOCK_LIMIT"] = "100000"
		v["BETTERKEY_COMMAND_UNLOCK_LIMIT"] = "100000"
		v["BETTERKEY_LOG_LEVEL"] = "info"
	}
	running := make([]*process, replicas)
	for i := range running {
		running[i] = startProcess(t, "replica-"+strconv.Itoa(i), in, settings)
		lb.add(running[i].url())
	}
	waitFor(t, "the balancer to see every replica", func() bool {
		for _, p := range running {
			if !lb.ready(p.url()) {
				return false
			}
		}
		return true
	})

	// The app's view: everything goes through the balancer.
	app := &env{t: t, infra: in, apple: in.apple, sc: in.smartcar, logs: &syncBuffer{}, dbURL: in.dbURL,
		signingKey: in.signingKey, servers: &wiring.Servers{HTTPAddr: lb.addr()}}
	owner, garage := app.garage(cars)

	l := &loadClient{t: t, base: "http://" + lb.addr(), http: &http.Client{Timeout: 60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	ctx, stopLoad := context.WithCancel(context.Background())
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted []string
		stored   []string // webhook event ids answered 2xx
		refused  int      // webhook deliveries answered non-2xx (Smartcar retries them)
	)
	for _, c := range garage { // one driver per car, lock and unlock in turn, each followed to its end
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				action := []string{"lock", "unlock"}[i%2]
				st, body := l.call("submit", "POST", "/v1/vehicles/"+c.id+"/commands", map[string]string{"action": action}, owner.access)
				if st != http.StatusOK && st != http.StatusAccepted {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				id, _ := body["id"].(string)
				mu.Lock()
				accepted = append(accepted, id)
				mu.Unlock()
				for s, _ := body["status"].(string); !isFinal(s); {
					st, body = l.call("status", "GET", "/v1/commands/"+id+"?wait=5", nil, owner.access)
					if st == http.StatusOK {
						s, _ = body["status"].(string)
					}
				}
			}
		})
	}
	for range 2 { // new sign-ins, each refreshed and listing its (empty) garage
		wg.Go(func() {
			for ctx.Err() == nil {
				_, nb := l.call("nonce", "POST", "/v1/auth/nonce", nil, "")
				nonce, _ := nb["nonce"].(string)
				tok, err := in.apple.Mint(applesim.MintOptions{Subject: applesim.NewSubject(), Audience: audience, Nonce: applesim.NonceClaim(nonce)})
				if err != nil {
					l.failures.add("mint: " + err.Error())
					return
				}
				st, sb := l.call("sign-in", "POST", "/v1/auth/apple", map[string]string{"identity_token": tok, "nonce": nonce,
					"install_id": "load", "device": "phone"}, "")
				if st != http.StatusOK {
					continue
				}
				rt, _ := sb["refresh_token"].(string)
				_, rb := l.call("refresh", "POST", "/v1/auth/refresh", map[string]string{"refresh_token": rt}, "")
				at, _ := rb["access_token"].(string)
				l.call("vehicles", "GET", "/v1/vehicles", nil, at)
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	wg.Go(func() { // the owner's app refreshing its list
		for ctx.Err() == nil {
			l.call("vehicles", "GET", "/v1/vehicles", nil, owner.access)
			time.Sleep(50 * time.Millisecond)
		}
	})
	wg.Go(func() { // Smartcar pushing lock states
		for ctx.Err() == nil {
			ev, err := in.smartcar.LockStateEvent(garage[rand.IntN(len(garage))].sc, smartcarsim.Drift{})
			if err != nil {
				l.failures.add("event: " + err.Error())
				return
			}
			a, _, _ := in.smartcar.DeliverOnce(context.Background(), "http://"+lb.addr()+"/v1/webhooks/smartcar", ev)
			mu.Lock()
			switch {
			case a.Err != nil:
				l.failures.add("webhook: " + a.Err.Error())
			case a.Status/100 == 2:
				stored = append(stored, ev.ID)
			default:
				refused++
			}
			mu.Unlock()
			l.outcomes.add("webhook " + strconv.Itoa(a.Status))
			time.Sleep(50 * time.Millisecond)
		}
	})

	start := time.Now()
	time.Sleep(3 * time.Second)
	for i, old := range running { // the deploy: each replica in turn
		old.signal(syscall.SIGTERM)
		if code := old.wait(60 * time.Second); code != 0 {
			t.Fatalf("%s exited %d after SIGTERM", old.name, code)
		}
		next := startProcess(t, fmt.Sprintf("replica-%d-v2", i), in, settings)
		lb.add(next.url())
		waitFor(t, "the balancer to route to "+next.name, func() bool { return lb.ready(next.url()) })
		running[i] = next
	}
	if rest := minLoad - time.Since(start); rest > 0 {
		time.Sleep(rest)
	}
	stopLoad()
	wg.Wait()
	loaded := time.Since(start)

	// Every accepted command ended, succeeded, and reached its car exactly once.
	statuses := map[string]int{}
	for _, id := range accepted {
		statuses[app.final(owner.access, id).str("status")]++
	}
	sent := 0
	for _, c := range garage {
		sent += app.carCommands(c)
	}
	if statuses["succeeded"] != len(accepted) || sent != len(accepted) {
		t.Errorf("%d commands accepted: %v; %d reached the cars, want exactly one each", len(accepted), statuses, sent)
	}
	// Every webhook answered 2xx is in the inbox; the rest were refused, so Smartcar retries them.
	missing := 0
	for _, id := range stored {
		if app.scalar("SELECT count(*) FROM webhook_inbox WHERE source = 'smartcar' AND event_id = $1", id) != 1 {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged webhooks are not stored", missing, len(stored))
	}
	total := 0
	out := l.outcomes.snapshot()
	for _, n := range out {
		total += n
	}
	if f := l.failures.snapshot(); len(f) > 0 || lb.failures.Load() > 0 {
		t.Errorf("client-side failures: %v (balancer: %d)", f, lb.failures.Load())
	}
	t.Logf("rolling deploy of %d replicas under %s of load: %d requests, 0 allowed to fail; %s; %d commands (%v), %d webhooks stored, %d refused",
		replicas, loaded.Round(time.Second), total, describe(out), len(accepted), statuses, len(stored), refused)
}
