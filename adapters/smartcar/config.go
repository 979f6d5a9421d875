package smartcar

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/betterkey/backend/domain"
)

// Smartcar's production origins (reference §2.1). Tests and the first run point them at the
// simulator, the same way the SDKs' SMARTCAR_*_ORIGIN overrides do.
const (
	DefaultConnectURL = "https://connect.smartcar.com"
	DefaultAuthURL    = "https://auth.smartcar.com"
	DefaultAPIURL     = "https://api.smartcar.com"
	// API v3 (reference §0, §2.4): the vehicle API, the application token endpoint and the
	// Management API.
	DefaultVehicleURL    = "https://vehicle.api.smartcar.com"
	DefaultIAMURL        = "https://iam.smartcar.com"
	DefaultManagementURL = "https://management.smartcar.com"
)

// API names the generation of Smartcar's vehicle API the service speaks.
type API string

// The generations: v2 authenticates each vehicle call with the owner's OAuth token; v3 with one
// application token (client credentials) and the owner's Smartcar user id.
const (
	APIv2 API = "v2"
	APIv3 API = "v3"
)

// DefaultConfirmInterval is how often a long-running v3 command's effect is looked for in the
// vehicle's lock signal.
const DefaultConfirmInterval = 2 * time.Second

// Timeout defaults and bounds. Token grants are quick; reads go through to the car maker; a
// command may take Smartcar up to 300 s, and the SDKs wait 310 s so a late answer still lands.
const (
	DefaultTokenTimeout   = 10 * time.Second
	DefaultReadTimeout    = 30 * time.Second
	DefaultCommandTimeout = 310 * time.Second
	MaxTimeout            = 10 * time.Minute
)

// DefaultUserAgent identifies us to Smartcar, whose docs require a User-Agent on token calls.
const DefaultUserAgent = "BetterKey-Backend/1.0 (smartcar-v2; Go)"

// Mode is Smartcar Connect's mode: which vehicles the owner can connect.
type Mode string

// Connect modes. Production runs live only; the config layer enforces that.
const (
	ModeLive      Mode = "live"
	ModeTest      Mode = "test"
	ModeSimulated Mode = "simulated"
)

// Timeouts bound each kind of call; zero means the default.
type Timeouts struct {
	// Token bounds a token grant (code exchange, refresh).
	Token time.Duration
	// Read bounds user, vehicle list, attribute and lock-status reads, and disconnect.
	Read time.Duration
	// Command bounds a lock or unlock; past it the outcome is unknown.
	Command time.Duration
}

// Config is the Smartcar application this service acts as. Zero values mean the defaults, so the
// config layer only names what it changes.
type Config struct {
	// ConnectURL, AuthURL and APIURL are the origins of Connect, the token endpoint and the
	// vehicle API, without a trailing slash (one is tolerated).
	ConnectURL string
	AuthURL    string
	APIURL     string
	// VehicleURL, IAMURL and ManagementURL are the origins of the v3 vehicle API, the
	// application token endpoint and the Management API (v3 only).
	VehicleURL    string
	IAMURL        string
	ManagementURL string
	// API is the vehicle API generation (default v2).
	API API
	// ManagementToken is the Application Management Token; v3 disconnects a vehicle through the
	// Management API with it. It is the key webhooks are signed with.
	ManagementToken domain.Secret
	// ConfirmInterval is how often a long-running v3 command is checked (default
	// DefaultConfirmInterval).
	ConfirmInterval time.Duration
	// ClientID and ClientSecret are the application's credentials from the Smartcar Dashboard.
	ClientID     string
	ClientSecret domain.Secret
	// RedirectURI must equal one registered in the Dashboard, byte for byte.
	RedirectURI string
	// Mode is Connect's mode (default live).
	Mode Mode
	// Scopes is the Connect scope list (default domain.DefaultConnectScopes, the SPEC minimum).
	Scopes []string
	// Timeouts bound every call.
	Timeouts Timeouts
	// UserAgent is sent on every call (default DefaultUserAgent).
	UserAgent string
}

// WithDefaults fills zero values, so the config layer can print the settings in effect.
func (c Config) WithDefaults() Config {
	c.ConnectURL = strings.TrimRight(orDefault(c.ConnectURL, DefaultConnectURL), "/")
	c.AuthURL = strings.TrimRight(orDefault(c.AuthURL, DefaultAuthURL), "/")
	c.APIURL = strings.TrimRight(orDefault(c.APIURL, DefaultAPIURL), "/")
	c.VehicleURL = strings.TrimRight(orDefault(c.VehicleURL, DefaultVehicleURL), "/")
	c.IAMURL = strings.TrimRight(orDefault(c.IAMURL, DefaultIAMURL), "/")
	c.ManagementURL = strings.TrimRight(orDefault(c.ManagementURL, DefaultManagementURL), "/")
	if c.API == "" {
		c.API = APIv2
	}
	if c.ConfirmInterval <= 0 {
		c.ConfirmInterval = DefaultConfirmInterval
	}
	if c.Mode == "" {
		c.Mode = ModeLive
	}
	if len(c.Scopes) == 0 {
		c.Scopes = domain.DefaultConnectScopes()
	}
	if c.Timeouts.Token == 0 {
		c.Timeouts.Token = DefaultTokenTimeout
	}
	if c.Timeouts.Read == 0 {
		c.Timeouts.Read = DefaultReadTimeout
	}
	if c.Timeouts.Command == 0 {
		c.Timeouts.Command = DefaultCommandTimeout
	}
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
	return c
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// Validate refuses a config that could not work or would leak, so the server fails at startup
// instead of at the first Connect.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	for _, o := range []struct{ name, v string }{
		{"connect url", c.ConnectURL}, {"auth url", c.AuthURL}, {"api url", c.APIURL},
		{"vehicle url", c.VehicleURL}, {"iam url", c.IAMURL}, {"management url", c.ManagementURL},
	} {
		u, err := url.Parse(o.v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("%s must be an absolute http or https origin", o.name))
		}
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("client id is required"))
	}
	if c.ClientSecret.Empty() {
		errs = append(errs, errors.New("client secret is required"))
	}
	if u, err := url.Parse(c.RedirectURI); err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "") || u.Fragment != "" {
		errs = append(errs, errors.New("redirect uri must be an absolute uri without a fragment"))
	}
	switch c.API {
	case APIv2:
	case APIv3:
		if c.ManagementToken.Empty() {
			errs = append(errs, errors.New("the management token is required for api v3"))
		}
	default:
		errs = append(errs, errors.New("api must be v2 or v3"))
	}
	switch c.Mode {
	case ModeLive, ModeTest, ModeSimulated:
	default:
		errs = append(errs, errors.New("mode must be live, test or simulated"))
	}
	for _, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\n") {
			errs = append(errs, errors.New("scopes must be non-empty single words"))
			break
		}
	}
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"token", c.Timeouts.Token}, {"read", c.Timeouts.Read}, {"command", c.Timeouts.Command}} {
		if t.d < 0 || t.d > MaxTimeout {
			errs = append(errs, fmt.Errorf("%s timeout must be between 0 and %s", t.name, MaxTimeout))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("validate smartcar config: %w", err)
	}
	return nil
}
