package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/domain"
)

// benchClient keeps connections alive across parallel goroutines, as a load balancer would.
var benchTransport = &http.Transport{MaxIdleConnsPerHost: 64}

func post(b *testing.B, url string, body []byte, bearer string) int {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := benchTransport.RoundTrip(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode
}

// BenchmarkSignIn measures POST /v1/auth/apple end to end over HTTP on PostgreSQL: identity
// token verification, nonce consumption, user creation and session creation. Nonces and identity
// tokens are prepared before the timer, since minting RS256 tokens is Apple's work, not ours.
func BenchmarkSignIn(b *testing.B) {
	e := startServer(b)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		n := e.nonce()
		body, _ := json.Marshal(map[string]string{
			"identity_token": e.mint(applesim.NewSubject(), n, nil), "nonce": n,
			"install_id": "install-" + strconv.Itoa(i), "device": "phone",
		})
		bodies[i] = body
	}
	url := e.servers.HTTPURL() + "/v1/auth/apple"
	next := make(chan int, b.N)
	for i := range b.N {
		next <- i
	}
	close(next)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if st := post(b, url, bodies[<-next], ""); st != http.StatusOK {
				b.Errorf("status %d", st)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signins/s")
}

// BenchmarkAuthenticatedRequest measures GET /v1/me over HTTP: access token verification, the
// session lookup that makes revocation immediate, and the user read.
func BenchmarkAuthenticatedRequest(b *testing.B) {
	e := startServer(b)
	s := e.signIn(applesim.NewSubject(), "install-1", "phone")
	getParallel(b, e.servers.HTTPURL()+"/v1/me", s.access)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkRefresh measures POST /v1/auth/refresh: the locked rotation on PostgreSQL.
func BenchmarkRefresh(b *testing.B) {
	e := startServer(b)
	tokens := make(chan string, b.N+64)
	for i := range 64 {
		tokens <- e.signIn(applesim.NewSubject(), "install-"+strconv.Itoa(i), "phone").refresh
	}
	url := e.servers.HTTPURL() + "/v1/auth/refresh"
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tok := <-tokens
			body, _ := json.Marshal(map[string]string{"refresh_token": tok})
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			res, err := benchTransport.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			var out struct {
				RefreshToken string `json:"refresh_token"`
			}
			_ = json.NewDecoder(res.Body).Decode(&out)
			_ = res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Fatalf("status %d", res.StatusCode)
			}
			tokens <- out.RefreshToken
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
}

// BenchmarkListVehicles measures GET /v1/vehicles over HTTP on PostgreSQL: authentication plus
// one query; no token set is decrypted on this path.
func BenchmarkListVehicles(b *testing.B) {
	e := startServer(b)
	if err := e.sc.SetConsentUser(e.sc.CreateUser(smartcarsim.DefaultFleet()...).ID); err != nil {
		b.Fatal(err)
	}
	s := e.signIn(applesim.NewSubject(), "install-1", "phone")
	if q, _ := e.connect(s.access, ""); q.Get("status") != "linked" {
		b.Fatalf("connect: %v", q)
	}
	getParallel(b, e.servers.HTTPURL()+"/v1/vehicles", s.access)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkConnectionRefresh measures the refresh path: load and open the sealed set, take the
// connection's row lock, refresh at the Smartcar simulator over HTTP, seal and store the new set.
// Each iteration makes the upstream reject the current access token once, as a 401 would.
func BenchmarkConnectionRefresh(b *testing.B) {
	e := startServer(b)
	const conns = 16
	ids := make(chan domain.ConnectionID, conns)
	for i := range conns {
		if err := e.sc.SetConsentUser(e.sc.CreateUser(smartcarsim.VehicleSpec{Make: "TESLA", Model: "Model Y", Year: 2024}).ID); err != nil {
			b.Fatal(err)
		}
		s := e.signIn(applesim.NewSubject(), "install-"+strconv.Itoa(i), "phone")
		if q, _ := e.connect(s.access, ""); q.Get("status") != "linked" {
			b.Fatalf("connect: %v", q)
		}
		v, err := e.link.Vehicles(b.Context(), domain.UserID(s.userID))
		if err != nil || len(v) != 1 {
			b.Fatalf("vehicles: %v %v", v, err)
		}
		ids <- v[0].ConnectionID
	}
	before := e.sc.Stats().Refreshes
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := <-ids
			first := true
			err := e.link.WithAccess(b.Context(), id, func(domain.VehicleGrant) error {
				if first {
					first = false
					return domain.ErrReauthRequired
				}
				return nil
			})
			ids <- id
			if err != nil {
				b.Error(err)
			}
		}
	})
	b.StopTimer()
	if got := e.sc.Stats().Refreshes - before; got != int64(b.N) {
		b.Fatalf("%d refreshes for %d iterations", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
}

// getParallel runs authenticated GETs of url from 8 goroutines per core until b.N are done.
func getParallel(b *testing.B, url, bearer string) {
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+bearer)
			res, err := benchTransport.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Errorf("status %d", res.StatusCode)
			}
		}
	})
}
