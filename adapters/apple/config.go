package apple

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Apple's published endpoints. They are hard-coded defaults rather than read from Apple's discovery
// document at runtime: in June 2025 the discovery document briefly named another issuer and broke
// every verifier that trusted it.
const (
	DefaultIssuer  = "https://appleid.apple.com"
	DefaultJWKSURL = "https://appleid.apple.com/auth/keys"
)

// Bounds and defaults of Config. SPEC §3 fixes the leeway ceiling, the cache window and the
// unknown-kid refetch rate; the rest keep a slow or hostile upstream cheap.
const (
	MaxLeeway                        = 60 * time.Second
	DefaultLeeway                    = 60 * time.Second
	MinCacheTTL                      = 15 * time.Minute
	MaxCacheTTL                      = 60 * time.Minute
	DefaultCacheTTL                  = 30 * time.Minute
	DefaultUnknownKIDRefetchInterval = 30 * time.Second
	DefaultHTTPTimeout               = 5 * time.Second
	MaxHTTPTimeout                   = 30 * time.Second
	DefaultMaxStale                  = 24 * time.Hour
)

// Config says which Apple tokens this service accepts and how hard it leans on Apple's key
// endpoint. Zero durations mean the default, so a config file only names what it changes.
type Config struct {
	// JWKSURL is Apple's key set; tests and the first run point it at the simulator.
	JWKSURL string
	// Issuers is the accepted iss set (default DefaultIssuer). It is a list because Apple once
	// advertised a second issuer and may again.
	Issuers []string
	// Audiences is the allowlist of client ids (app bundle id, watch app id, Services id). It is
	// server configuration only; an audience taken from the request would defeat the check.
	Audiences []string
	// Leeway absorbs clock skew on exp and iat; at most MaxLeeway.
	Leeway time.Duration
	// CacheTTL is how long fetched keys are used before a scheduled refetch; clamped to
	// [MinCacheTTL, MaxCacheTTL].
	CacheTTL time.Duration
	// UnknownKIDRefetchInterval is the least time between two off-schedule fetches (unknown kid,
	// retry after a failure), so forged kids cannot turn us into a load generator against Apple.
	UnknownKIDRefetchInterval time.Duration
	// HTTPTimeout bounds one key fetch.
	HTTPTimeout time.Duration
	// MaxStale is how long the last good keys keep being served while Apple is unreachable.
	MaxStale time.Duration
}

// WithDefaults fills zero values and clamps CacheTTL, so the config layer can print the settings
// actually in effect.
func (c Config) WithDefaults() Config {
	if c.JWKSURL == "" {
		c.JWKSURL = DefaultJWKSURL
	}
	if len(c.Issuers) == 0 {
		c.Issuers = []string{DefaultIssuer}
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	switch {
	case c.CacheTTL == 0:
		c.CacheTTL = DefaultCacheTTL
	case c.CacheTTL < MinCacheTTL:
		c.CacheTTL = MinCacheTTL
	case c.CacheTTL > MaxCacheTTL:
		c.CacheTTL = MaxCacheTTL
	}
	if c.UnknownKIDRefetchInterval == 0 {
		c.UnknownKIDRefetchInterval = DefaultUnknownKIDRefetchInterval
	}
	if c.HTTPTimeout == 0 {
		c.HTTPTimeout = DefaultHTTPTimeout
	}
	if c.MaxStale == 0 {
		c.MaxStale = DefaultMaxStale
	}
	return c
}

// Validate refuses settings that would weaken verification or make the key cache misbehave, so
// the server fails at startup instead of at the first sign-in.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	u, err := url.Parse(c.JWKSURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, errors.New("jwks url must be an absolute http or https url"))
	}
	if len(c.Audiences) == 0 {
		errs = append(errs, errors.New("at least one audience is required"))
	}
	for _, a := range c.Audiences {
		if a == "" {
			errs = append(errs, errors.New("audiences must not contain an empty entry"))
			break
		}
	}
	for _, i := range c.Issuers {
		if i == "" {
			errs = append(errs, errors.New("issuers must not contain an empty entry"))
			break
		}
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		errs = append(errs, fmt.Errorf("leeway must be between 0 and %s", MaxLeeway))
	}
	if c.UnknownKIDRefetchInterval < 0 {
		errs = append(errs, errors.New("unknown kid refetch interval must not be negative"))
	}
	if c.HTTPTimeout < 0 || c.HTTPTimeout > MaxHTTPTimeout {
		errs = append(errs, fmt.Errorf("http timeout must be between 0 and %s", MaxHTTPTimeout))
	}
	if c.MaxStale < c.CacheTTL {
		errs = append(errs, errors.New("max stale must not be shorter than the cache ttl"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("validate apple config: %w", err)
	}
	return nil
}
