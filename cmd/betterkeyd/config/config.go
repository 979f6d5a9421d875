// Package config reads the BETTERKEY_* environment once, validates it against the environment's
// rules (SPEC §9, §12) and prints it with every secret masked. Only main calls Load; everything
// else receives the sub-configs it needs.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/betterkey/backend/adapters/admission"
	"github.com/betterkey/backend/adapters/bearer"
	"github.com/betterkey/backend/domain"
)

// Env is the deployment environment; it decides which shortcuts are allowed.
type Env string

// The environments BETTERKEY_ENV accepts.
const (
	Development Env = "development"
	Staging     Env = "staging"
	Production  Env = "production"
)

// Config is the whole server configuration.
type Config struct {
	Env       Env
	HTTPAddr  string
	AdminAddr string
	LogLevel  string
	LogFormat string // text or json

	DatabaseURL domain.Secret // may carry a password
	// DatabaseMaxConns caps each replica's PostgreSQL connections (SQLite: concurrent readers);
	// replicas × this must stay below the server's max_connections, with room for operators.
	// Zero is the adapter's default: 20 for PostgreSQL, 4 readers for SQLite.
	DatabaseMaxConns int
	// Simulators mounts the built-in Apple (and later Smartcar) simulators under /sim/ and points
	// unset upstream URLs at them. Development only.
	Simulators bool

	AppleIssuers   []string
	AppleJWKSURL   string
	AppleTokenURL  string
	AppleRevokeURL string
	AppleAudiences []string
	// AppleTeamID, AppleKeyID and ApplePrivateKey (the .p8 PEM) sign the client secret of
	// Apple's token and revoke endpoints. Without them (development only) authorization codes
	// are not redeemed, unless the built-in simulator stands in for Apple.
	AppleTeamID        string
	AppleKeyID         string
	ApplePrivateKey    domain.Secret
	DevSkipAppleVerify bool
	SessionSigningKey  domain.Secret
	// SessionVerifyKeys verify access tokens without signing any: a rotation's overlap.
	SessionVerifyKeys []domain.Secret
	// SessionKeyReload is how often each replica reloads the signing keys rotated over the admin
	// API; a new key signs after twice that plus 5 s.
	SessionKeyReload   time.Duration
	SessionIdleTTL     time.Duration
	SessionAbsoluteTTL time.Duration
	AccessTokenTTL     time.Duration
	AdminTokens        []domain.Secret
	KeyringFile        string

	VaultAddr       string
	VaultToken      domain.Secret
	VaultRoleID     string
	VaultSecretID   domain.Secret
	VaultMount      string
	VaultTransitKey string

	SmartcarConnectURL string
	SmartcarAuthURL    string
	SmartcarAPIURL     string
	// SmartcarAPI is the vehicle API generation ("v2" or "v3"); v3 also needs the vehicle, IAM
	// and Management origins (Smartcar's by default) and signs in as the application.
	SmartcarAPI            string
	SmartcarVehicleURL     string
	SmartcarIAMURL         string
	SmartcarManagementURL  string
	SmartcarClientID       string
	SmartcarClientSecret   domain.Secret
	SmartcarRedirectURI    string
	SmartcarMode           string
	SmartcarWebhookSecrets []domain.Secret // current first; two during rotation
	AppReturnURL           string

	CommandTTL         time.Duration
	CommandLease       time.Duration
	CommandLockLimit   int // per user per CommandLimitWindow
	CommandUnlockLimit int
	CommandLimitWindow time.Duration

	MaxBodyBytes        int64
	TLSCertFile         string
	TLSKeyFile          string
	TrustForwardedProto bool
	// ShutdownDelay is how long a replica keeps serving after SIGTERM with /readyz at 503, so the
	// load balancer stops routing to it before its listeners close; ShutdownGrace then bounds
	// http.Server.Shutdown.
	ShutdownDelay time.Duration
	ShutdownGrace time.Duration
	// RequestTimeout bounds each REST request's work; a long-poll gets its wait on top.
	RequestTimeout time.Duration
	// Admission sizes the REST listener's overload limiter (BETTERKEY_ADMISSION_*): past it a
	// request gets 503 OVERLOADED at once instead of queueing.
	Admission admission.Limits
	// Retention is how long ended rows are kept (BETTERKEY_RETENTION_*), and RetentionInterval
	// how often the janitor runs.
	Retention         domain.Retention
	RetentionInterval time.Duration
	// OTLPEndpoint is the OTLP/HTTP collector traces go to; empty turns tracing off.
	OTLPEndpoint        string
	generatedSigningKey bool
}

// Credentials of the built-in Smartcar simulator; development uses them when none are set.
const (
	DevSmartcarClientID        = "betterkey-dev-client"
	DevSmartcarClientSecret    = "betterkey-dev-client-secret"
	DevSmartcarManagementToken = "betterkey-dev-management-token"
)

// Getenv reads one variable; main passes os.Getenv and tests pass a map lookup.
type Getenv func(string) string

// Load reads and validates the configuration. genKey supplies a signing key when development
// runs without one; it is a parameter so the package has no hidden randomness.
func Load(getenv Getenv, genKey func() domain.Secret) (Config, error) {
	r := reader{get: getenv}
	c := Config{
		Env:                   Env(r.str("ENV", string(Development))),
		HTTPAddr:              r.str("HTTP_ADDR", "127.0.0.1:8080"),
		AdminAddr:             r.str("ADMIN_ADDR", "127.0.0.1:8081"),
		LogLevel:              r.str("LOG_LEVEL", "info"),
		LogFormat:             r.str("LOG_FORMAT", ""),
		DatabaseURL:           domain.NewSecret(r.str("DATABASE_URL", "")),
		DatabaseMaxConns:      r.integer("DATABASE_MAX_CONNS", 0),
		AppleIssuers:          r.list("APPLE_ISSUER", []string{"https://appleid.apple.com"}),
		AppleJWKSURL:          r.str("APPLE_JWKS_URL", ""),
		AppleTokenURL:         r.str("APPLE_TOKEN_URL", ""),
		AppleRevokeURL:        r.str("APPLE_REVOKE_URL", ""),
		AppleTeamID:           r.str("APPLE_TEAM_ID", ""),
		AppleKeyID:            r.str("APPLE_KEY_ID", ""),
		ApplePrivateKey:       domain.NewSecret(r.str("APPLE_PRIVATE_KEY", "")),
		AppleAudiences:        r.list("APPLE_AUDIENCES", nil),
		DevSkipAppleVerify:    r.boolean("DEV_SKIP_APPLE_VERIFY", false),
		SessionSigningKey:     domain.NewSecret(r.str("SESSION_SIGNING_KEY", "")),
		SessionIdleTTL:        r.duration("SESSION_IDLE_TTL", 30*24*time.Hour),
		SessionAbsoluteTTL:    r.duration("SESSION_ABSOLUTE_TTL", 90*24*time.Hour),
		AccessTokenTTL:        r.duration("ACCESS_TOKEN_TTL", 15*time.Minute),
		SessionKeyReload:      r.duration("SESSION_KEY_RELOAD", 10*time.Second),
		KeyringFile:           r.str("KEYRING_FILE", ""),
		VaultAddr:             r.str("VAULT_ADDR", ""),
		VaultToken:            domain.NewSecret(r.str("VAULT_TOKEN", "")),
		VaultRoleID:           r.str("VAULT_ROLE_ID", ""),
		VaultSecretID:         domain.NewSecret(r.str("VAULT_SECRET_ID", "")),
		VaultMount:            r.str("VAULT_MOUNT", "transit"),
		VaultTransitKey:       r.str("VAULT_TRANSIT_KEY", ""),
		SmartcarConnectURL:    r.str("SMARTCAR_CONNECT_URL", ""),
		SmartcarAuthURL:       r.str("SMARTCAR_AUTH_URL", ""),
		SmartcarAPIURL:        r.str("SMARTCAR_API_URL", ""),
		SmartcarAPI:           r.str("SMARTCAR_API", "v2"),
		SmartcarVehicleURL:    r.str("SMARTCAR_VEHICLE_URL", ""),
		SmartcarIAMURL:        r.str("SMARTCAR_IAM_URL", ""),
		SmartcarManagementURL: r.str("SMARTCAR_MANAGEMENT_URL", ""),
		SmartcarClientID:      r.str("SMARTCAR_CLIENT_ID", ""),
		SmartcarClientSecret:  domain.NewSecret(r.str("SMARTCAR_CLIENT_SECRET", "")),
		SmartcarRedirectURI:   r.str("SMARTCAR_REDIRECT_URI", ""),
		SmartcarMode:          r.str("SMARTCAR_MODE", ""),
		AppReturnURL:          r.str("APP_RETURN_URL", ""),
		CommandTTL:            r.duration("COMMAND_TTL", 30*time.Second),
		CommandLease:          r.duration("COMMAND_LEASE", 20*time.Second),
		CommandLockLimit:      r.integer("COMMAND_LOCK_LIMIT", 30),
		CommandUnlockLimit:    r.integer("COMMAND_UNLOCK_LIMIT", 10),
		CommandLimitWindow:    r.duration("COMMAND_LIMIT_WINDOW", 10*time.Minute),
		MaxBodyBytes:          int64(r.integer("MAX_BODY_BYTES", 64<<10)),
		TLSCertFile:           r.str("TLS_CERT_FILE", ""),
		TLSKeyFile:            r.str("TLS_KEY_FILE", ""),
		TrustForwardedProto:   r.boolean("TRUST_FORWARDED_PROTO", false),
		// SHUTDOWN_GRACE_PERIOD is the first wave's name of SHUTDOWN_GRACE, still read.
		ShutdownGrace:  r.duration("SHUTDOWN_GRACE", r.duration("SHUTDOWN_GRACE_PERIOD", 20*time.Second)),
		RequestTimeout: r.duration("REQUEST_TIMEOUT", 10*time.Second),
		OTLPEndpoint:   r.str("OTLP_ENDPOINT", ""),
	}
	def := domain.DefaultRetention()
	c.Retention = domain.Retention{
		Sessions:         r.duration("RETENTION_SESSIONS", def.Sessions),
		RefreshHistory:   r.duration("RETENTION_REFRESH_HISTORY", def.RefreshHistory),
		Commands:         r.duration("RETENTION_COMMANDS", def.Commands),
		Inbox:            r.duration("RETENTION_INBOX", def.Inbox),
		DeletionRequests: r.duration("RETENTION_DELETION_REQUESTS", def.DeletionRequests),
	}
	c.RetentionInterval = r.duration("RETENTION_INTERVAL", 10*time.Minute)
	ad := admission.Defaults
	c.Admission = admission.Limits{
		Concurrency: r.integer("ADMISSION_CONCURRENCY", ad.Concurrency),
		Reserved:    r.integer("ADMISSION_RESERVED_COMMANDS", ad.Reserved),
		Queue:       r.integer("ADMISSION_QUEUE", ad.Queue),
		Wait:        r.duration("ADMISSION_WAIT", ad.Wait),
		LongPolls:   r.integer("ADMISSION_LONG_POLLS", ad.LongPolls),
	}
	// A load balancer needs a moment to see /readyz fail; on a laptop nobody is routing.
	delay := 5 * time.Second
	if c.Env == Development {
		delay = 0
	}
	c.ShutdownDelay = r.duration("SHUTDOWN_DELAY", delay)
	for _, t := range r.list("ADMIN_TOKENS", nil) {
		c.AdminTokens = append(c.AdminTokens, domain.NewSecret(t))
	}
	for _, k := range r.list("SESSION_VERIFY_KEYS", nil) {
		c.SessionVerifyKeys = append(c.SessionVerifyKeys, domain.NewSecret(k))
	}
	for _, t := range r.list("SMARTCAR_WEBHOOK_SECRETS", nil) {
		c.SmartcarWebhookSecrets = append(c.SmartcarWebhookSecrets, domain.NewSecret(t))
	}
	c.Simulators = r.boolean("SIMULATORS", c.Env == Development)
	if r.err != nil {
		return Config{}, r.err
	}
	c.applyDevelopmentDefaults(genKey)
	c.applyUpstreamDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// applyUpstreamDefaults points unset Apple endpoints at Apple; the revoke endpoint sits beside
// the token endpoint, on Apple as on the simulator.
func (c *Config) applyUpstreamDefaults() {
	if c.AppleTokenURL == "" {
		c.AppleTokenURL = "https://appleid.apple.com/auth/token"
	}
	if c.AppleRevokeURL == "" {
		if base, ok := strings.CutSuffix(c.AppleTokenURL, "/auth/token"); ok {
			c.AppleRevokeURL = base + "/auth/revoke"
		}
	}
}

// applyDevelopmentDefaults fills what a newcomer's first run needs and nothing else: a local file
// database, the simulators' URLs, the simulator's audiences and a throwaway signing key.
func (c *Config) applyDevelopmentDefaults(genKey func() domain.Secret) {
	if c.Env != Development {
		return
	}
	if c.DatabaseURL.Empty() {
		c.DatabaseURL = domain.NewSecret("file:.betterkey/betterkey.db")
	}
	if c.KeyringFile == "" && c.VaultAddr == "" {
		c.KeyringFile = ".betterkey/keyring.json"
	}
	if c.SmartcarMode == "" {
		c.SmartcarMode = "simulated"
	}
	if c.AppReturnURL == "" {
		c.AppReturnURL = "betterkey://vehicles/connected"
	}
	if c.Simulators && c.SmartcarAPIURL == "" {
		base := "http://" + c.HTTPAddr + "/sim/smartcar"
		c.SmartcarConnectURL, c.SmartcarAuthURL, c.SmartcarAPIURL = base, base, base
		c.SmartcarVehicleURL, c.SmartcarIAMURL, c.SmartcarManagementURL = base, base, base
		if c.SmartcarClientID == "" {
			c.SmartcarClientID, c.SmartcarClientSecret = DevSmartcarClientID, domain.NewSecret(DevSmartcarClientSecret)
		}
		if len(c.SmartcarWebhookSecrets) == 0 {
			c.SmartcarWebhookSecrets = []domain.Secret{domain.NewSecret(DevSmartcarManagementToken)}
		}
	}
	if c.SmartcarRedirectURI == "" {
		c.SmartcarRedirectURI = "http://" + c.HTTPAddr + "/v1/smartcar/callback"
	}
	if c.Simulators && c.AppleJWKSURL == "" {
		base := "http://" + c.HTTPAddr + "/sim/apple"
		c.AppleJWKSURL = base + "/auth/keys"
		if c.AppleTokenURL == "" {
			c.AppleTokenURL = base + "/auth/token"
		}
	}
	if len(c.AppleAudiences) == 0 {
		c.AppleAudiences = []string{"com.betterkey.app", "com.betterkey.app.watchkitapp"}
	}
	if c.SessionSigningKey.Empty() && genKey != nil {
		c.SessionSigningKey = genKey()
		c.generatedSigningKey = true
	}
}

// StopTimeout is how long a stop may take in all: the delay, the listeners' grace, and time for
// the command worker to record what it cut short. fx's stop timeout is this, never shorter.
func (c Config) StopTimeout() time.Duration {
	return c.ShutdownDelay + c.ShutdownGrace + 10*time.Second
}

// Validate enforces the rules that keep staging and production fail-closed.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch c.Env {
	case Development, Staging, Production:
	default:
		add("BETTERKEY_ENV must be development, staging or production")
	}
	for name, addr := range map[string]string{"BETTERKEY_HTTP_ADDR": c.HTTPAddr, "BETTERKEY_ADMIN_ADDR": c.AdminAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			add("%s must be host:port", name)
		}
	}
	if c.DatabaseURL.Empty() {
		add("BETTERKEY_DATABASE_URL is required")
	}
	if c.AppleJWKSURL == "" {
		add("BETTERKEY_APPLE_JWKS_URL is required")
	} else if u, err := url.Parse(c.AppleJWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		add("BETTERKEY_APPLE_JWKS_URL must be an absolute http(s) URL")
	}
	if len(c.AppleAudiences) == 0 {
		add("BETTERKEY_APPLE_AUDIENCES is required")
	}
	if n := countSet(c.AppleTeamID != "", c.AppleKeyID != "", !c.ApplePrivateKey.Empty()); n != 0 && n != 3 {
		add("BETTERKEY_APPLE_TEAM_ID, BETTERKEY_APPLE_KEY_ID and BETTERKEY_APPLE_PRIVATE_KEY go together")
	}
	for name, raw := range map[string]string{"BETTERKEY_APPLE_TOKEN_URL": c.AppleTokenURL, "BETTERKEY_APPLE_REVOKE_URL": c.AppleRevokeURL} {
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add("%s must be an absolute http(s) URL", name)
		}
	}
	if len(c.SessionVerifyKeys) > 2 {
		add("BETTERKEY_SESSION_VERIFY_KEYS takes at most two keys (the one rotated out and the next)")
	}
	if c.SessionSigningKey.Len() < 32 {
		add("BETTERKEY_SESSION_SIGNING_KEY is required: at least 32 random bytes in base64")
	}
	if c.SessionKeyReload < 100*time.Millisecond || c.SessionKeyReload > 5*time.Minute {
		add("BETTERKEY_SESSION_KEY_RELOAD must be between 100ms and 5m")
	}
	if c.AccessTokenTTL <= 0 || c.AccessTokenTTL > time.Hour {
		add("BETTERKEY_ACCESS_TOKEN_TTL must be between 0 and 1h")
	}
	if c.SessionIdleTTL <= 0 || c.SessionAbsoluteTTL < c.SessionIdleTTL {
		add("BETTERKEY_SESSION_IDLE_TTL must be positive and not above BETTERKEY_SESSION_ABSOLUTE_TTL")
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 8<<20 {
		add("BETTERKEY_MAX_BODY_BYTES must be between 1 KiB and 8 MiB")
	}
	if (c.KeyringFile == "") == (c.VaultAddr == "") {
		add("exactly one of BETTERKEY_KEYRING_FILE (development) and BETTERKEY_VAULT_ADDR must be set")
	}
	if c.VaultAddr != "" && (c.VaultTransitKey == "" || (c.VaultToken.Empty() && (c.VaultRoleID == "" || c.VaultSecretID.Empty()))) {
		add("Vault needs BETTERKEY_VAULT_TRANSIT_KEY and BETTERKEY_VAULT_TOKEN or BETTERKEY_VAULT_ROLE_ID with BETTERKEY_VAULT_SECRET_ID")
	}
	if c.SmartcarClientID == "" || c.SmartcarClientSecret.Empty() || c.SmartcarRedirectURI == "" {
		add("BETTERKEY_SMARTCAR_CLIENT_ID, BETTERKEY_SMARTCAR_CLIENT_SECRET and BETTERKEY_SMARTCAR_REDIRECT_URI are required")
	}
	switch c.SmartcarMode {
	case "live", "test", "simulated":
	default:
		add("BETTERKEY_SMARTCAR_MODE must be live, test or simulated")
	}
	switch c.SmartcarAPI {
	case "v2":
	case "v3":
		if len(c.SmartcarWebhookSecrets) == 0 {
			add("BETTERKEY_SMARTCAR_API=v3 needs BETTERKEY_SMARTCAR_WEBHOOK_SECRETS: its first, the Application Management Token, disconnects vehicles")
		}
	default:
		add("BETTERKEY_SMARTCAR_API must be v2 or v3")
	}
	if u, err := url.Parse(c.AppReturnURL); err != nil || u.Scheme == "" {
		add("BETTERKEY_APP_RETURN_URL must be an absolute URL (an app scheme or https)")
	}
	if c.CommandTTL < time.Second || c.CommandTTL > 5*time.Minute {
		add("BETTERKEY_COMMAND_TTL must be between 1s and 5m")
	}
	if c.CommandLease < time.Second || c.CommandLease > 5*time.Minute {
		add("BETTERKEY_COMMAND_LEASE must be between 1s and 5m")
	}
	if c.CommandLockLimit < 1 || c.CommandUnlockLimit < 1 || c.CommandLimitWindow <= 0 {
		add("BETTERKEY_COMMAND_LOCK_LIMIT, _UNLOCK_LIMIT and _LIMIT_WINDOW must be positive")
	}
	if c.ShutdownDelay < 0 || c.ShutdownDelay > time.Minute || c.ShutdownGrace <= 0 || c.ShutdownGrace > 5*time.Minute {
		add("BETTERKEY_SHUTDOWN_DELAY must be between 0 and 1m and BETTERKEY_SHUTDOWN_GRACE between 0 and 5m")
	}
	if c.OTLPEndpoint != "" {
		if u, err := url.Parse(c.OTLPEndpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add("BETTERKEY_OTLP_ENDPOINT must be an absolute http(s) URL")
		}
	}
	if c.DatabaseMaxConns < 0 || c.DatabaseMaxConns > 1000 {
		add("BETTERKEY_DATABASE_MAX_CONNS must be between 1 and 1000 (unset: 20, SQLite 4)")
	}
	if a := c.Admission; a.Concurrency < 1 || a.Reserved < 1 || a.Queue < 0 || a.LongPolls < 1 || a.Wait <= 0 || a.Wait > time.Second {
		add("BETTERKEY_ADMISSION_CONCURRENCY, _RESERVED_COMMANDS and _LONG_POLLS must be positive, _QUEUE not negative, _WAIT between 0 and 1s")
	}
	if c.RequestTimeout < time.Second || c.RequestTimeout > 2*time.Minute {
		add("BETTERKEY_REQUEST_TIMEOUT must be between 1s and 2m")
	}
	if err := c.Retention.Validate(); err != nil {
		add("BETTERKEY_RETENTION_*: %v", err)
	}
	if c.RetentionInterval < time.Second || c.RetentionInterval > 24*time.Hour {
		add("BETTERKEY_RETENTION_INTERVAL must be between 1s and 24h")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		add("BETTERKEY_TLS_CERT_FILE and BETTERKEY_TLS_KEY_FILE go together")
	}
	for _, t := range c.AdminTokens {
		if t.Len() < 32 || !bearer.Valid(t.Reveal()) {
			add("every BETTERKEY_ADMIN_TOKENS entry must be at least 32 characters of A-Z a-z 0-9 - . _ ~ + / (a bearer token68)")
			break
		}
	}
	if c.Env != Development {
		errs = append(errs, c.validateDeployed()...)
	}
	return errors.Join(errs...)
}

// validateDeployed lists what staging and production refuse.
func (c Config) validateDeployed() []error {
	var errs []error
	add := func(msg string) { errs = append(errs, errors.New(msg)) }
	if c.DevSkipAppleVerify {
		add("BETTERKEY_DEV_SKIP_APPLE_VERIFY is refused outside development")
	}
	if c.Simulators {
		add("BETTERKEY_SIMULATORS is refused outside development")
	}
	if c.KeyringFile != "" {
		add("the local keyring (BETTERKEY_KEYRING_FILE) is refused outside development; use Vault transit")
	}
	if !strings.HasPrefix(c.DatabaseURL.Reveal(), "postgres://") && !strings.HasPrefix(c.DatabaseURL.Reveal(), "postgresql://") {
		add("BETTERKEY_DATABASE_URL must be a postgres:// URL outside development")
	}
	if c.Env == Production && c.SmartcarMode != "live" {
		add("BETTERKEY_SMARTCAR_MODE must be live in production")
	}
	if len(c.SmartcarWebhookSecrets) == 0 {
		add("BETTERKEY_SMARTCAR_WEBHOOK_SECRETS is required outside development")
	}
	if c.AppleTeamID == "" || c.AppleKeyID == "" || c.ApplePrivateKey.Empty() {
		add("BETTERKEY_APPLE_TEAM_ID, BETTERKEY_APPLE_KEY_ID and BETTERKEY_APPLE_PRIVATE_KEY are required outside development: account deletion must revoke Sign in with Apple (App Store guideline 5.1.1(v))")
	}
	if len(c.SmartcarWebhookSecrets) > 2 {
		add("BETTERKEY_SMARTCAR_WEBHOOK_SECRETS takes at most two secrets (current, previous)")
	}
	for _, u := range []struct{ name, raw string }{
		{"BETTERKEY_APPLE_JWKS_URL", c.AppleJWKSURL}, {"BETTERKEY_APPLE_TOKEN_URL", c.AppleTokenURL},
		{"BETTERKEY_APPLE_REVOKE_URL", c.AppleRevokeURL},
		{"BETTERKEY_SMARTCAR_CONNECT_URL", c.SmartcarConnectURL}, {"BETTERKEY_SMARTCAR_AUTH_URL", c.SmartcarAuthURL},
		{"BETTERKEY_SMARTCAR_API_URL", c.SmartcarAPIURL}, {"BETTERKEY_SMARTCAR_VEHICLE_URL", c.SmartcarVehicleURL},
		{"BETTERKEY_SMARTCAR_IAM_URL", c.SmartcarIAMURL}, {"BETTERKEY_SMARTCAR_MANAGEMENT_URL", c.SmartcarManagementURL},
		{"BETTERKEY_VAULT_ADDR", c.VaultAddr},
	} {
		if p, err := url.Parse(u.raw); u.raw != "" && (err != nil || p.Scheme != "https") {
			add(u.name + " must be https outside development")
		}
	}
	if c.TLSCertFile == "" && !c.TrustForwardedProto {
		add("plain HTTP is refused outside development: set BETTERKEY_TLS_CERT_FILE/KEY_FILE or BETTERKEY_TRUST_FORWARDED_PROTO behind a TLS proxy")
	}
	return errs
}

// GeneratedSigningKey reports whether development made up a signing key, so main can say that
// sessions will not survive a restart.
func (c Config) GeneratedSigningKey() bool { return c.generatedSigningKey }

// Secure reports whether requests must arrive over HTTPS.
func (c Config) Secure() bool { return c.Env != Development }

// String prints the configuration with every secret masked, one NAME=value per line.
func (c Config) String() string {
	var b strings.Builder
	for _, kv := range c.Fields() {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
	}
	return b.String()
}

// Fields lists the configuration as name/value pairs with every secret masked; main logs them at
// startup so an operator sees what is in effect.
func (c Config) Fields() [][2]string {
	var out [][2]string
	line := func(k string, v any) { out = append(out, [2]string{k, fmt.Sprint(v)}) }
	line("BETTERKEY_ENV", c.Env)
	line("BETTERKEY_HTTP_ADDR", c.HTTPAddr)
	line("BETTERKEY_ADMIN_ADDR", c.AdminAddr)
	line("BETTERKEY_DATABASE_URL", maskURL(c.DatabaseURL))
	line("BETTERKEY_DATABASE_MAX_CONNS", c.DatabaseMaxConns)
	line("BETTERKEY_SIMULATORS", c.Simulators)
	line("BETTERKEY_APPLE_ISSUER", strings.Join(c.AppleIssuers, ","))
	line("BETTERKEY_APPLE_JWKS_URL", c.AppleJWKSURL)
	line("BETTERKEY_APPLE_AUDIENCES", strings.Join(c.AppleAudiences, ","))
	line("BETTERKEY_APPLE_TOKEN_URL", c.AppleTokenURL)
	line("BETTERKEY_APPLE_REVOKE_URL", c.AppleRevokeURL)
	line("BETTERKEY_APPLE_TEAM_ID", c.AppleTeamID)
	line("BETTERKEY_APPLE_KEY_ID", c.AppleKeyID)
	line("BETTERKEY_APPLE_PRIVATE_KEY", c.ApplePrivateKey)
	line("BETTERKEY_DEV_SKIP_APPLE_VERIFY", c.DevSkipAppleVerify)
	line("BETTERKEY_SESSION_SIGNING_KEY", c.SessionSigningKey)
	line("BETTERKEY_SESSION_VERIFY_KEYS", fmt.Sprintf("%d configured", len(c.SessionVerifyKeys)))
	line("BETTERKEY_SESSION_KEY_RELOAD", c.SessionKeyReload)
	line("BETTERKEY_ADMIN_TOKENS", fmt.Sprintf("%d configured", len(c.AdminTokens)))
	line("BETTERKEY_KEYRING_FILE", c.KeyringFile)
	line("BETTERKEY_VAULT_ADDR", c.VaultAddr)
	line("BETTERKEY_VAULT_TOKEN", c.VaultToken)
	line("BETTERKEY_VAULT_TRANSIT_KEY", c.VaultTransitKey)
	line("BETTERKEY_SMARTCAR_API_URL", c.SmartcarAPIURL)
	line("BETTERKEY_SMARTCAR_API", c.SmartcarAPI)
	line("BETTERKEY_SMARTCAR_VEHICLE_URL", c.SmartcarVehicleURL)
	line("BETTERKEY_SMARTCAR_IAM_URL", c.SmartcarIAMURL)
	line("BETTERKEY_SMARTCAR_MANAGEMENT_URL", c.SmartcarManagementURL)
	line("BETTERKEY_SMARTCAR_CLIENT_ID", c.SmartcarClientID)
	line("BETTERKEY_SMARTCAR_CLIENT_SECRET", c.SmartcarClientSecret)
	line("BETTERKEY_SMARTCAR_REDIRECT_URI", c.SmartcarRedirectURI)
	line("BETTERKEY_SMARTCAR_MODE", c.SmartcarMode)
	line("BETTERKEY_SMARTCAR_WEBHOOK_SECRETS", fmt.Sprintf("%d configured", len(c.SmartcarWebhookSecrets)))
	line("BETTERKEY_APP_RETURN_URL", c.AppReturnURL)
	line("BETTERKEY_COMMAND_TTL", c.CommandTTL)
	line("BETTERKEY_COMMAND_LEASE", c.CommandLease)
	line("BETTERKEY_COMMAND_LOCK_LIMIT", c.CommandLockLimit)
	line("BETTERKEY_COMMAND_UNLOCK_LIMIT", c.CommandUnlockLimit)
	line("BETTERKEY_COMMAND_LIMIT_WINDOW", c.CommandLimitWindow)
	line("BETTERKEY_SHUTDOWN_DELAY", c.ShutdownDelay)
	line("BETTERKEY_SHUTDOWN_GRACE", c.ShutdownGrace)
	line("BETTERKEY_REQUEST_TIMEOUT", c.RequestTimeout)
	line("BETTERKEY_ADMISSION_CONCURRENCY", c.Admission.Concurrency)
	line("BETTERKEY_ADMISSION_RESERVED_COMMANDS", c.Admission.Reserved)
	line("BETTERKEY_ADMISSION_QUEUE", c.Admission.Queue)
	line("BETTERKEY_ADMISSION_WAIT", c.Admission.Wait)
	line("BETTERKEY_ADMISSION_LONG_POLLS", c.Admission.LongPolls)
	line("BETTERKEY_RETENTION_SESSIONS", c.Retention.Sessions)
	line("BETTERKEY_RETENTION_REFRESH_HISTORY", c.Retention.RefreshHistory)
	line("BETTERKEY_RETENTION_COMMANDS", c.Retention.Commands)
	line("BETTERKEY_RETENTION_INBOX", c.Retention.Inbox)
	line("BETTERKEY_RETENTION_DELETION_REQUESTS", c.Retention.DeletionRequests)
	line("BETTERKEY_RETENTION_INTERVAL", c.RetentionInterval)
	line("BETTERKEY_OTLP_ENDPOINT", c.OTLPEndpoint)
	return out
}

// maskURL keeps scheme, host and path of a database URL and drops credentials and query.
func maskURL(s domain.Secret) string {
	u, err := url.Parse(s.Reveal())
	if err != nil || u.Scheme == "" {
		return "[REDACTED]"
	}
	if u.Scheme == "file" || u.Scheme == "sqlite" {
		return u.Scheme + ":" + u.Opaque + u.Path
	}
	return u.Scheme + "://" + u.Host + u.Path
}

type reader struct {
	get Getenv
	err error
}

func (r *reader) str(key, def string) string {
	if v := strings.TrimSpace(r.get("BETTERKEY_" + key)); v != "" {
		return v
	}
	return def
}

func (r *reader) list(key string, def []string) []string {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	var out []string
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (r *reader) boolean(key string, def bool) bool {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(key, "a boolean")
	}
	return b
}

func (r *reader) duration(key string, def time.Duration) time.Duration {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		r.fail(key, "a duration such as 15m or 720h")
	}
	return d
}

func (r *reader) integer(key string, def int) int {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.fail(key, "an integer")
	}
	return n
}

func (r *reader) fail(key, want string) {
	r.err = errors.Join(r.err, fmt.Errorf("BETTERKEY_%s must be %s", key, want))
}

// countSet counts the true values, for settings that go together.
func countSet(set ...bool) int {
	n := 0
	for _, b := range set {
		if b {
			n++
		}
	}
	return n
}
