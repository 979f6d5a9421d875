// Package smartcarsim is an offline Smartcar: Connect with auto-consent, the OAuth token endpoint
// with rotating refresh tokens, the v2 vehicle API for users, vehicles, attributes, lock status,
// lock commands and disconnect, and signed webhook delivery, built from the facts in
// shared/reference/smartcar-api.md. Tests run it behind httptest; the first-run dev server mounts
// it under a prefix so a machine with no network can connect, lock and unlock a car.
//
// Routes are relative to the mount point:
//
//	GET    /oauth/authorize                     Connect: auto-consent, 302 to redirect_uri
//	POST   /oauth/token  (and /oauth/token/)    authorization_code and refresh_token grants
//	GET    /v2.0/user                           the grant's Smartcar user id
//	GET    /v2.0/vehicles?limit=&offset=        the grant's vehicle ids, paged
//	GET    /v2.0/vehicles/{id}                  make, model, year
//	GET    /v2.0/vehicles/{id}/security         lock status and openings
//	POST   /v2.0/vehicles/{id}/security         {"action":"LOCK"|"UNLOCK"}
//	POST   /sim/webhooks/lock-state             development helper: push signed lock-state webhooks
//	DELETE /v2.0/vehicles/{id}/application      disconnect the vehicle from this application
//	GET    /v2.0/vehicles/{id}/vin and /permissions  the VIN; what the owner granted, paged
//
// API v3 (application tokens, the owner named by sc-user-id):
//
//	POST   /oauth2/token                        client_credentials: an application token (1 h)
//	GET    /v3/vehicles/{id}                    {"id","type":"vehicle","attributes":{make,model,year}}
//	GET    /v3/vehicles/{id}/signals            closure-islocked, closure-doors, closure-windows, paged
//	GET    /v3/vehicles/{id}/signals/{code}     one signal
//	POST   /v3/vehicles/{id}/commands/security/lock|unlock   200 sync, or 202 (SetLongRunningCommands)
//	DELETE /v2.0/management/connections?user_id=&vehicle_id=  Management API (Basic default:AMT)
//
// Faults set on an endpoint strike its v2 and v3 routes alike.
//
// The API routes also answer with a trailing slash, as the SDKs call some of them that way. Every
// answer carries an SC-Request-Id. Connect auto-consents; two simulator-only query parameters steer
// it: sim_user=<Smartcar user id> picks who consents, sim_outcome=access_denied|
// vehicle_incompatible|no_vehicles|invalid_subscription|server_error|configuration_error ends the
// session with that documented error instead.
//
// To mount the simulator under a prefix, strip the prefix:
//
//	mux.Handle("/smartcar/", http.StripPrefix("/smartcar", sim.Handler()))
//
// and point BETTERKEY_SMARTCAR_CONNECT_URL, _AUTH_URL and _API_URL at http://host/smartcar.
package smartcarsim

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Development credentials, used when Options leave them empty, so the first-run config and the
// simulator agree without anyone inventing secrets.
const (
	DevClientID        = "8229df9f-91a0-4ff0-a1ae-a1f38ee24d07"
	DevClientSecret    = "sim-client-secret-not-for-production"
	DevManagementToken = "sim-application-management-token"
)

// Smartcar's token and code lifetimes (reference §1.2–1.3).
const (
	AccessTokenLifetime  = 2 * time.Hour
	RefreshTokenLifetime = 60 * 24 * time.Hour
	CodeLifetime         = 10 * time.Minute
	DefaultRefreshGrace  = time.Minute
	// DefaultPageLimit and MaxPageLimit govern GET /vehicles. Smartcar does not document them;
	// these are the simulator's choice.
	DefaultPageLimit = 10
	MaxPageLimit     = 50
)

// maxSimBody bounds what the simulator reads from a request.
const maxSimBody = 64 << 10

// Options configure a simulator. Zero values give a realistic Smartcar with the Dev credentials.
type Options struct {
	// ClientID and ClientSecret are the one registered application (default DevClientID and
	// DevClientSecret).
	ClientID     string
	ClientSecret string
	// RedirectURIs are the application's registered redirect URIs; at least one is required.
	// Connect without redirect_uri uses the first, as the Dashboard default.
	RedirectURIs []string
	// ManagementToken is the Application Management Token that signs webhooks (default
	// DevManagementToken).
	ManagementToken string
	// Now is the simulator's clock (default time.Now); tests share a fake clock with the code
	// under test.
	Now func() time.Time
	// RefreshGrace is how long a used refresh token keeps working (default one minute; Smartcar's
	// newer pages say ten).
	RefreshGrace time.Duration
	// Webhook tunes Deliver and Verify.
	Webhook WebhookOptions
	// SeedDefaultUser creates one user owning DefaultFleet at start, the one who consents in
	// Connect by default: what the first-run server wants.
	SeedDefaultUser bool
	// WebhookURL is where POST /sim/webhooks/lock-state delivers when the request names no URL;
	// the first-run server points it at its own webhook endpoint.
	WebhookURL string
}

// Stats are the simulator's counters, so tests can assert how often the backend called.
type Stats struct {
	AuthorizeRequests int64
	TokenRequests     int64
	CodeExchanges     int64 // successful authorization_code grants
	Refreshes         int64 // successful refresh_token grants
	APIRequests       int64
	Commands          int64 // lock and unlock commands that reached a car
	Disconnects       int64 // vehicles removed from the application's grants
	WebhookAttempts   int64
	AppTokens         int64 // v3 application tokens issued
}

// Simulator is an in-process Smartcar. All methods are safe for concurrent use.
type Simulator struct {
	opts    Options
	handler http.Handler
	done    chan struct{}
	close   sync.Once

	authorizeRequests, tokenRequests, codeExchanges, refreshes atomic.Int64
	apiRequests, commands, disconnects, webhookAttempts        atomic.Int64
	appTokens                                                  atomic.Int64

	mu       sync.Mutex
	users    map[string]*user
	order    []string // user ids in creation order
	vehicles map[string]*vehicle
	grants   []*grant
	codes    map[string]*authCode
	access   map[string]*accessToken
	refresh  map[string]*refreshToken
	consent  string // user who consents when Connect names none
	outcome  Outcome
	faults   map[Endpoint]*Fault
	latency  map[Endpoint]time.Duration
	apps     map[string]time.Time // v3 application tokens and their expiry
	// longRunning is the delay after which a v3 command takes effect when it answers 202;
	// negative: commands answer 200 and take effect at once.
	longRunning time.Duration
}

// New creates an empty simulator; CreateUser adds Smartcar users and their vehicles.
func New(opts Options) (*Simulator, error) {
	if len(opts.RedirectURIs) == 0 {
		return nil, errors.New("create smartcar simulator: at least one redirect uri is required")
	}
	if opts.ClientID == "" {
		opts.ClientID = DevClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DevClientSecret
	}
	if opts.ManagementToken == "" {
		opts.ManagementToken = DevManagementToken
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RefreshGrace <= 0 {
		opts.RefreshGrace = DefaultRefreshGrace
	}
	opts.Webhook = opts.Webhook.withDefaults()
	s := &Simulator{
		opts:     opts,
		done:     make(chan struct{}),
		users:    map[string]*user{},
		vehicles: map[string]*vehicle{},
		codes:    map[string]*authCode{},
		access:   map[string]*accessToken{},
		refresh:  map[string]*refreshToken{},
		faults:   map[Endpoint]*Fault{},
		latency:  map[Endpoint]time.Duration{},
		apps:     map[string]time.Time{},

		longRunning: -1,
	}
	s.handler = s.routes()
	if opts.SeedDefaultUser {
		s.CreateUser(DefaultFleet()...)
	}
	return s, nil
}

// routes builds the handler; every route goes through s.serve for counters, latency and faults.
func (s *Simulator) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oauth/authorize", s.serve(EndpointAuthorize, s.handleAuthorize))
	mux.HandleFunc("POST /oauth/token", s.serve(EndpointToken, s.handleToken))
	mux.HandleFunc("POST /oauth/token/{$}", s.serve(EndpointToken, s.handleToken))
	mux.HandleFunc("POST /oauth2/token", s.serve(EndpointAppToken, s.handleAppToken))
	mux.HandleFunc("POST /sim/webhooks/lock-state", s.handleDevDeliver)
	api := []struct {
		pattern string
		ep      Endpoint
		h       http.HandlerFunc
	}{
		{"GET /v2.0/user", EndpointUser, s.handleUser},
		{"GET /v2.0/vehicles", EndpointVehicles, s.handleVehicles},
		{"GET /v2.0/vehicles/{id}", EndpointAttributes, s.handleAttributes},
		{"GET /v2.0/vehicles/{id}/security", EndpointLockStatus, s.handleLockStatus},
		{"GET /v2.0/vehicles/{id}/vin", EndpointVIN, s.handleVIN},
		{"GET /v2.0/vehicles/{id}/permissions", EndpointPermissions, s.handlePermissions},
		{"POST /v2.0/vehicles/{id}/security", EndpointSecurity, s.handleSecurity},
		{"DELETE /v2.0/vehicles/{id}/application", EndpointDisconnect, s.handleDisconnect},
		{"GET /v3/vehicles/{id}", EndpointAttributes, s.handleV3Vehicle},
		{"GET /v3/vehicles/{id}/signals", EndpointLockStatus, s.handleV3Signals},
		{"GET /v3/vehicles/{id}/signals/{code}", EndpointLockStatus, s.handleV3Signal},
		{"POST /v3/vehicles/{id}/commands/security/{action}", EndpointSecurity, s.handleV3Security},
		{"DELETE /v2.0/management/connections", EndpointDisconnect, s.handleManagementDisconnect},
	}
	for _, a := range api {
		mux.HandleFunc(a.pattern, s.serve(a.ep, a.h))
		mux.HandleFunc(a.pattern+"/{$}", s.serve(a.ep, a.h))
	}
	// Every other path answers in the v2 error shape, as Smartcar's API does, never with Go's
	// plain-text 404.
	mux.HandleFunc("/", s.serve(EndpointAll, func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, http.StatusNotFound, "RESOURCE_NOT_FOUND", "PATH", 0)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("SC-Request-Id", newUUID()) // on every answer, the mux's own 404 and 405 too
		mux.ServeHTTP(w, r)
	})
}

// Handler serves the simulator's routes relative to its mount point (see the package doc).
func (s *Simulator) Handler() http.Handler { return s.handler }

// Close releases requests held by latency or a hanging fault, so a server shutdown never waits
// on them. The simulator keeps answering afterwards, without delays.
func (s *Simulator) Close() { s.close.Do(func() { close(s.done) }) }

// ClientID is the registered application's client id.
func (s *Simulator) ClientID() string { return s.opts.ClientID }

// ClientSecret is the registered application's client secret.
func (s *Simulator) ClientSecret() string { return s.opts.ClientSecret }

// ManagementToken is the Application Management Token that signs webhooks; the backend's
// webhook secret must equal it.
func (s *Simulator) ManagementToken() string { return s.opts.ManagementToken }

// Stats returns the counters.
func (s *Simulator) Stats() Stats {
	return Stats{
		AuthorizeRequests: s.authorizeRequests.Load(),
		TokenRequests:     s.tokenRequests.Load(),
		CodeExchanges:     s.codeExchanges.Load(),
		Refreshes:         s.refreshes.Load(),
		APIRequests:       s.apiRequests.Load(),
		Commands:          s.commands.Load(),
		Disconnects:       s.disconnects.Load(),
		WebhookAttempts:   s.webhookAttempts.Load(),
		AppTokens:         s.appTokens.Load(),
	}
}

func (s *Simulator) now() time.Time { return s.opts.Now() }

// newUUID returns a random version-4 UUID, the shape of Smartcar's ids and tokens.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
