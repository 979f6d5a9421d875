// Package applesim is an offline Sign in with Apple: the key set, identity tokens, the token and
// revoke endpoints and server-to-server notifications, built from the facts in
// shared/reference/sign-in-with-apple.md. Tests run it behind httptest; the first-run dev server
// mounts it under a prefix so a machine with no network can sign in.
//
// Routes are relative to the mount point:
//
//	GET  /auth/keys           Apple's JWKS (RS256 keys)
//	POST /auth/token          authorization_code and refresh_token grants
//	POST /auth/revoke         token revocation
//	POST /sim/identity-token  development helper: mint an identity token from {"sub","aud","nonce"}
//
// To mount it under a prefix, strip the prefix:
//
//	mux.Handle("/apple/", http.StripPrefix("/apple", sim.Handler()))
//
// and point BETTERKEY_APPLE_JWKS_URL at http://host/apple/auth/keys.
package applesim

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Issuer is the iss Apple puts in identity tokens and notifications.
const Issuer = "https://appleid.apple.com"

// Failure is an injectable upstream fault, so tests and demos can see how the backend copes with
// Apple being down, slow or wrong.
type Failure string

// The faults the simulator can inject; FailNone restores normal service.
const (
	FailNone             Failure = ""
	FailJWKSServerError  Failure = "jwks_500"       // /auth/keys answers 500
	FailJWKSHang         Failure = "jwks_hang"      // /auth/keys never answers until the client gives up
	FailJWKSSlow         Failure = "jwks_slow"      // /auth/keys answers after Options.SlowDelay
	FailJWKSMalformed    Failure = "jwks_malformed" // /auth/keys answers 200 with a body that is not a key set
	FailJWKSEmpty        Failure = "jwks_empty"     // /auth/keys answers an empty key set
	FailTokenServerError Failure = "token_500"      // /auth/token and /auth/revoke answer 500
)

// Options tunes a simulator; the zero value is a realistic Apple.
type Options struct {
	// Keys is how many RSA-2048 signing keys are published (default 3, Apple shows 3–4).
	Keys int
	// Now is the simulator's clock (default time.Now); tests share one fake clock with the code
	// under test.
	Now func() time.Time
	// DefaultAudience is used by /sim/identity-token when the request names none.
	DefaultAudience string
	// SlowDelay is how long FailJWKSSlow delays the key set (default 2s).
	SlowDelay time.Duration
	// RefreshWithoutIDToken makes refresh_token grants answer without an id_token, as several
	// reports say Apple does.
	RefreshWithoutIDToken bool
}

// Stats are the simulator's request counters, so tests can assert how often the backend called.
type Stats struct {
	JWKSFetches    int64
	TokenRequests  int64
	RevokeRequests int64
	Revocations    int64
}

// Simulator is an in-process Apple. All methods are safe for concurrent use.
type Simulator struct {
	opts    Options
	handler http.Handler
	done    chan struct{}
	close   sync.Once

	jwksFetches    atomic.Int64
	tokenRequests  atomic.Int64
	revokeRequests atomic.Int64
	revocations    atomic.Int64

	mu      sync.Mutex
	failure Failure
	keys    []signingKey // oldest first; the last one signs by default
	clients map[string]ClientKey
	codes   map[string]*authCode
	grants  map[string]*grant // by refresh token
	access  map[string]*grant // by access token
}

// signingKey is one published RSA key.
type signingKey struct {
	kid  string
	priv *rsa.PrivateKey
}

// New creates a simulator with freshly generated keys.
func New(opts Options) (*Simulator, error) {
	if opts.Keys <= 0 {
		opts.Keys = 3
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SlowDelay <= 0 {
		opts.SlowDelay = 2 * time.Second
	}
	s := &Simulator{
		opts:    opts,
		done:    make(chan struct{}),
		clients: map[string]ClientKey{},
		codes:   map[string]*authCode{},
		grants:  map[string]*grant{},
		access:  map[string]*grant{},
	}
	for range opts.Keys {
		k, err := newSigningKey()
		if err != nil {
			return nil, fmt.Errorf("create simulator: %w", err)
		}
		s.keys = append(s.keys, k)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth/keys", s.handleKeys)
	mux.HandleFunc("POST /auth/token", s.handleToken)
	mux.HandleFunc("POST /auth/revoke", s.handleRevoke)
	mux.HandleFunc("POST /sim/identity-token", s.handleIdentityToken)
	s.handler = mux
	return s, nil
}

// Handler serves the simulator's routes relative to its mount point (see the package doc).
func (s *Simulator) Handler() http.Handler { return s.handler }

// Close releases requests held by FailJWKSHang or FailJWKSSlow, so a server shutdown never waits
// on them. The simulator keeps answering afterwards, without delays.
func (s *Simulator) Close() { s.close.Do(func() { close(s.done) }) }

// Fail switches the injected fault; Fail(FailNone) restores normal service.
func (s *Simulator) Fail(f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failure = f
}

// Stats returns the request counters.
func (s *Simulator) Stats() Stats {
	return Stats{
		JWKSFetches:    s.jwksFetches.Load(),
		TokenRequests:  s.tokenRequests.Load(),
		RevokeRequests: s.revokeRequests.Load(),
		Revocations:    s.revocations.Load(),
	}
}

// JWKSFetches is how many times /auth/keys was requested, failed requests included.
func (s *Simulator) JWKSFetches() int64 { return s.jwksFetches.Load() }

func (s *Simulator) currentFailure() Failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failure
}

func (s *Simulator) now() time.Time { return s.opts.Now() }

// errUnknownKey is returned when a test names a key the simulator does not hold.
var errUnknownKey = errors.New("no such key id")
