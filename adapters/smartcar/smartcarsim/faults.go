package smartcarsim

import (
	"net/http"
	"time"
)

// Endpoint names a route for latency and fault injection.
type Endpoint string

// The simulator's endpoints. EndpointAll applies to every route that has no setting of its own.
const (
	EndpointAll         Endpoint = "*"
	EndpointAuthorize   Endpoint = "authorize"
	EndpointToken       Endpoint = "token"
	EndpointUser        Endpoint = "user"
	EndpointVehicles    Endpoint = "vehicles"
	EndpointAttributes  Endpoint = "attributes"
	EndpointLockStatus  Endpoint = "lock_status"
	EndpointSecurity    Endpoint = "security"
	EndpointDisconnect  Endpoint = "disconnect"
	EndpointVIN         Endpoint = "vin"
	EndpointPermissions Endpoint = "permissions"
	EndpointAppToken    Endpoint = "app_token" // v3's client_credentials grant
)

// Fault is an injected upstream failure. Exactly one of an error answer (Status and/or Type),
// Hang or Drop applies. By default it strikes before the request has any effect; AfterEffect
// lets the request take effect first (a car that locked, a refresh that rotated) and then fails
// the answer, which is how a backend learns why "may have executed" matters.
type Fault struct {
	// Status is the HTTP status of the error answer. Zero derives it from Type.
	Status int
	// Type and Code are the v2 error's type and code (for the token endpoint: the OAuth error in
	// Code). Empty derives them from Status; 503 and 504 get a body that is not JSON, as a load
	// balancer sends.
	Type, Code string
	// RetryAfter adds a Retry-After header.
	RetryAfter time.Duration
	// Hang holds the request until the client gives up or the simulator closes.
	Hang bool
	// Drop closes the connection without an answer (a reset).
	Drop bool
	// AfterEffect applies the request's effect before failing.
	AfterEffect bool
	// Times is how many requests the fault strikes; 0 means until cleared.
	Times int
	// Fired, when set, receives the endpoint each time the fault strikes (without blocking), so a
	// test can wait for the moment instead of sleeping.
	Fired chan<- Endpoint
}

// SetFault injects f on ep (EndpointAll for every route without its own fault).
func (s *Simulator) SetFault(ep Endpoint, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[ep] = &f
}

// ClearFaults removes every injected fault and latency.
func (s *Simulator) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
	clear(s.latency)
}

// SetLatency delays every answer of ep (EndpointAll: every route without its own latency) by d.
// The delay ends early when the client gives up or the simulator closes.
func (s *Simulator) SetLatency(ep Endpoint, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency[ep] = d
}

// takeFault returns the fault that strikes this request of ep at the given stage and counts it
// down, or nil.
func (s *Simulator) takeFault(ep Endpoint, after bool) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := ep
	f, ok := s.faults[ep]
	if !ok {
		key, f = EndpointAll, s.faults[EndpointAll]
	}
	if f == nil || f.AfterEffect != after {
		return nil
	}
	if f.Times > 0 {
		if f.Times--; f.Times == 0 {
			delete(s.faults, key)
		}
	}
	c := *f
	return &c
}

func (s *Simulator) latencyFor(ep Endpoint) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.latency[ep]; ok {
		return d
	}
	return s.latency[EndpointAll]
}

// serve wraps a route: the counters, the latency and the faults that strike before any effect.
func (s *Simulator) serve(ep Endpoint, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch ep {
		case EndpointAuthorize:
			s.authorizeRequests.Add(1)
		case EndpointToken:
			s.tokenRequests.Add(1)
		case EndpointAppToken: // counted as issued (Stats.AppTokens)
		default:
			s.apiRequests.Add(1)
		}
		if !s.wait(r, s.latencyFor(ep)) {
			return
		}
		if f := s.takeFault(ep, false); f != nil {
			s.strike(w, r, ep, f)
			return
		}
		h(w, r)
	}
}

// wait delays by d; it reports false when the client gave up meanwhile.
func (s *Simulator) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return true
	case <-r.Context().Done():
		return false
	}
}

// strike carries out f on this request.
func (s *Simulator) strike(w http.ResponseWriter, r *http.Request, ep Endpoint, f *Fault) {
	if f.Fired != nil {
		select {
		case f.Fired <- ep:
		default:
		}
	}
	switch {
	case f.Hang:
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			writeAPIError(w, http.StatusServiceUnavailable, "", "", 0)
		}
	case f.Drop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		writeAPIError(w, http.StatusBadGateway, "", "", 0)
	case (ep == EndpointToken || ep == EndpointAppToken) && f.Type == "":
		status := f.Status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		code := f.Code
		if code == "" {
			code = "server_error"
		}
		setRetryAfter(w, f.RetryAfter)
		writeOAuthError(w, status, code, "Injected failure.")
	default:
		writeAPIError(w, f.Status, f.Type, f.Code, f.RetryAfter)
	}
}

// afterEffect applies a fault that strikes once the request took effect; it reports whether
// one did, in which case the answer is written.
func (s *Simulator) afterEffect(w http.ResponseWriter, r *http.Request, ep Endpoint) bool {
	f := s.takeFault(ep, true)
	if f == nil {
		return false
	}
	s.strike(w, r, ep, f)
	return true
}
