package config_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/admission"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
	"github.com/betterkey/backend/domain"
)

const signingKey = "c2lnbmluZy1rZXktdGhhdC1pcy1hdC1sZWFzdC0zMi1ieXRlcy1sb25n"

func load(vars map[string]string) (config.Config, error) {
	return config.Load(func(k string) string { return vars[k] }, func() domain.Secret { return domain.NewSecret(signingKey) })
}

// production returns a valid production environment; each case breaks one rule.
func production() map[string]string {
	return map[string]string{
		"BETTERKEY_ENV":                      "production",
		"BETTERKEY_DATABASE_URL":             "postgres://app:CANARY-PW@db.internal:5432/betterkey",
		"BETTERKEY_APPLE_JWKS_URL":           "https://appleid.apple.com/auth/keys",
		"BETTERKEY_APPLE_AUDIENCES":          "com.betterkey.app",
		"BETTERKEY_APPLE_TEAM_ID":            "TEAM123456",
		"BETTERKEY_APPLE_KEY_ID":             "KEY1234567",
		"BETTERKEY_APPLE_PRIVATE_KEY":        "-----BEGIN PRIVATE KEY-----\nCANARY-APPLE-KEY\n-----END PRIVATE KEY-----",
		"BETTERKEY_SESSION_SIGNING_KEY":      signingKey,
		"BETTERKEY_TLS_CERT_FILE":            "/etc/tls/cert.pem",
		"BETTERKEY_TLS_KEY_FILE":             "/etc/tls/key.pem",
		"BETTERKEY_VAULT_ADDR":               "https://vault.internal:8200",
		"BETTERKEY_VAULT_TOKEN":              "CANARY-VAULT-TOKEN",
		"BETTERKEY_VAULT_TRANSIT_KEY":        "betterkey-tokens",
		"BETTERKEY_SMARTCAR_CLIENT_ID":       "client",
		"BETTERKEY_SMARTCAR_CLIENT_SECRET":   "CANARY-SMARTCAR-SECRET",
		"BETTERKEY_SMARTCAR_REDIRECT_URI":    "https://api.betterkey.app/v1/smartcar/callback",
		"BETTERKEY_SMARTCAR_MODE":            "live",
		"BETTERKEY_SMARTCAR_WEBHOOK_SECRETS": "CANARY-WEBHOOK-SECRET",
		"BETTERKEY_APP_RETURN_URL":           "betterkey://vehicles/connected",
	}
}

func TestDevelopmentDefaultsStartWithNothingSet(t *testing.T) {
	c, err := load(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Env != config.Development || !c.Simulators || !strings.HasPrefix(c.DatabaseURL.Reveal(), "file:") || c.KeyringFile == "" {
		t.Fatalf("unexpected defaults:\n%s", c)
	}
	if !c.GeneratedSigningKey() {
		t.Fatal("development should make up a signing key")
	}
}

func TestProductionIsValid(t *testing.T) {
	if _, err := load(production()); err != nil {
		t.Fatal(err)
	}
}

func TestDeployedEnvironmentsRefuseShortcuts(t *testing.T) {
	cases := map[string]struct {
		set  map[string]string
		want string
	}{
		"apple verify shortcut":   {map[string]string{"BETTERKEY_DEV_SKIP_APPLE_VERIFY": "true"}, "DEV_SKIP_APPLE_VERIFY"},
		"simulators":              {map[string]string{"BETTERKEY_SIMULATORS": "true"}, "SIMULATORS"},
		"local keyring":           {map[string]string{"BETTERKEY_KEYRING_FILE": "/tmp/k.json", "BETTERKEY_VAULT_ADDR": ""}, "KEYRING"},
		"no webhook secret":       {map[string]string{"BETTERKEY_SMARTCAR_WEBHOOK_SECRETS": ""}, "WEBHOOK_SECRETS"},
		"http smartcar":           {map[string]string{"BETTERKEY_SMARTCAR_API_URL": "http://api.smartcar.com"}, "SMARTCAR_API_URL"},
		"http smartcar v3":        {map[string]string{"BETTERKEY_SMARTCAR_VEHICLE_URL": "http://vehicle.api.smartcar.com"}, "SMARTCAR_VEHICLE_URL"},
		"unknown smartcar api":    {map[string]string{"BETTERKEY_SMARTCAR_API": "v4"}, "SMARTCAR_API must be"},
		"v3 without the amt":      {map[string]string{"BETTERKEY_SMARTCAR_API": "v3", "BETTERKEY_SMARTCAR_WEBHOOK_SECRETS": ""}, "Application Management Token"},
		"http apple token url":    {map[string]string{"BETTERKEY_APPLE_TOKEN_URL": "http://appleid.apple.com/auth/token"}, "APPLE_TOKEN_URL"},
		"no vault credentials":    {map[string]string{"BETTERKEY_VAULT_TOKEN": ""}, "VAULT"},
		"file database":           {map[string]string{"BETTERKEY_DATABASE_URL": "file:x.db"}, "DATABASE_URL"},
		"plain http":              {map[string]string{"BETTERKEY_TLS_CERT_FILE": "", "BETTERKEY_TLS_KEY_FILE": ""}, "plain HTTP"},
		"http jwks":               {map[string]string{"BETTERKEY_APPLE_JWKS_URL": "http://appleid.apple.com/auth/keys"}, "https"},
		"no signing key":          {map[string]string{"BETTERKEY_SESSION_SIGNING_KEY": ""}, "SESSION_SIGNING_KEY"},
		"no audiences":            {map[string]string{"BETTERKEY_APPLE_AUDIENCES": ""}, "AUDIENCES"},
		"no apple client key":     {map[string]string{"BETTERKEY_APPLE_PRIVATE_KEY": ""}, "APPLE_PRIVATE_KEY"},
		"no apple team":           {map[string]string{"BETTERKEY_APPLE_TEAM_ID": "", "BETTERKEY_APPLE_KEY_ID": "", "BETTERKEY_APPLE_PRIVATE_KEY": ""}, "5.1.1(v)"},
		"http apple revoke url":   {map[string]string{"BETTERKEY_APPLE_REVOKE_URL": "http://appleid.apple.com/auth/revoke"}, "APPLE_REVOKE_URL"},
		"short admin token":       {map[string]string{"BETTERKEY_ADMIN_TOKENS": "short"}, "ADMIN_TOKENS"},
		"admin token not token68": {map[string]string{"BETTERKEY_ADMIN_TOKENS": "admin token with spaces 0123456789abcdef"}, "token68"},
		"key reload too fast":     {map[string]string{"BETTERKEY_SESSION_KEY_RELOAD": "10ms"}, "SESSION_KEY_RELOAD"},
		"key reload too slow":     {map[string]string{"BETTERKEY_SESSION_KEY_RELOAD": "1h"}, "SESSION_KEY_RELOAD"},
		"bad env":                 {map[string]string{"BETTERKEY_ENV": "prod"}, "BETTERKEY_ENV"},
		"bad duration":            {map[string]string{"BETTERKEY_ACCESS_TOKEN_TTL": "soon"}, "ACCESS_TOKEN_TTL"},
	}
	for _, env := range []string{"staging", "production"} {
		if env == "production" {
			cases["smartcar test mode"] = struct {
				set  map[string]string
				want string
			}{map[string]string{"BETTERKEY_SMARTCAR_MODE": "test"}, "SMARTCAR_MODE"}
		}
		for name, tc := range cases {
			t.Run(env+"/"+name, func(t *testing.T) {
				vars := production()
				vars["BETTERKEY_ENV"] = env
				for k, v := range tc.set {
					vars[k] = v
				}
				_, err := load(vars)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want an error naming %s", err, tc.want)
				}
				if strings.Contains(err.Error(), "CANARY") || strings.Contains(err.Error(), signingKey) {
					t.Fatal("the error leaks a secret")
				}
			})
		}
	}
}

// TestAppleClientKeyGoesTogether: in development the Apple client key may be absent, but never
// half there; the revoke endpoint follows the token endpoint unless set.
func TestAppleClientKeyGoesTogether(t *testing.T) {
	if _, err := load(map[string]string{"BETTERKEY_APPLE_TEAM_ID": "TEAM123456"}); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("a team id alone: %v, want refused", err)
	}
	c, err := load(map[string]string{"BETTERKEY_APPLE_TOKEN_URL": "http://127.0.0.1:9/apple/auth/token"})
	if err != nil || c.AppleRevokeURL != "http://127.0.0.1:9/apple/auth/revoke" {
		t.Fatalf("revoke URL = %q, %v; want it beside the token URL", c.AppleRevokeURL, err)
	}
	c, err = load(production())
	if err != nil || c.AppleTokenURL != "https://appleid.apple.com/auth/token" || c.AppleRevokeURL != "https://appleid.apple.com/auth/revoke" {
		t.Fatalf("deployed Apple endpoints = %q, %q, %v; want Apple's", c.AppleTokenURL, c.AppleRevokeURL, err)
	}
}

func TestPrintingMasksSecrets(t *testing.T) {
	vars := production()
	vars["BETTERKEY_ADMIN_TOKENS"] = "CANARY-ADMIN-TOKEN-0123456789abcdef0123456789"
	c, err := load(vars)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{c.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		for _, secret := range []string{"CANARY", signingKey} {
			if strings.Contains(out, secret) {
				t.Fatalf("printed config contains a secret:\n%s", out)
			}
		}
	}
	if !strings.Contains(c.String(), "db.internal") {
		t.Fatal("the masked database URL lost its host")
	}
}

// Retention periods come from BETTERKEY_RETENTION_*, default to domain.DefaultRetention, and a
// period outside its bounds (here a dedupe window under a day) refuses to start.
func TestRetentionSettings(t *testing.T) {
	c, err := load(map[string]string{})
	if err != nil || c.Retention != domain.DefaultRetention() || c.RetentionInterval != 10*time.Minute {
		t.Fatalf("defaults = %+v every %v, %v", c.Retention, c.RetentionInterval, err)
	}
	c, err = load(map[string]string{"BETTERKEY_RETENTION_COMMANDS": "17520h", "BETTERKEY_RETENTION_SESSIONS": "168h",
		"BETTERKEY_RETENTION_INTERVAL": "1m"})
	if err != nil || c.Retention.Commands != 2*365*24*time.Hour || c.Retention.Sessions != 7*24*time.Hour || c.RetentionInterval != time.Minute {
		t.Fatalf("set = %+v every %v, %v", c.Retention, c.RetentionInterval, err)
	}
	for k, v := range map[string]string{"BETTERKEY_RETENTION_INBOX": "1h", "BETTERKEY_RETENTION_COMMANDS": "soon",
		"BETTERKEY_RETENTION_INTERVAL": "0s"} {
		if _, err := load(map[string]string{k: v}); err == nil || !strings.Contains(err.Error(), "RETENTION") {
			t.Errorf("%s=%s: err = %v, want a refusal naming the setting", k, v, err)
		}
	}
}

// The overload limits come from BETTERKEY_ADMISSION_*, default to admission.Defaults, and a
// limit that would refuse everything or queue without end refuses to start.
func TestAdmissionSettings(t *testing.T) {
	c, err := load(map[string]string{})
	if err != nil || c.Admission != admission.Defaults {
		t.Fatalf("defaults = %+v, %v", c.Admission, err)
	}
	c, err = load(map[string]string{"BETTERKEY_ADMISSION_CONCURRENCY": "128", "BETTERKEY_ADMISSION_QUEUE": "0",
		"BETTERKEY_ADMISSION_WAIT": "20ms"})
	if err != nil || c.Admission.Concurrency != 128 || c.Admission.Queue != 0 || c.Admission.Wait != 20*time.Millisecond {
		t.Fatalf("set = %+v, %v", c.Admission, err)
	}
	for k, v := range map[string]string{"BETTERKEY_ADMISSION_CONCURRENCY": "0", "BETTERKEY_ADMISSION_RESERVED_COMMANDS": "0",
		"BETTERKEY_ADMISSION_QUEUE": "-1", "BETTERKEY_ADMISSION_WAIT": "2s", "BETTERKEY_ADMISSION_LONG_POLLS": "0"} {
		if _, err := load(map[string]string{k: v}); err == nil || !strings.Contains(err.Error(), "ADMISSION") {
			t.Errorf("%s=%s: err = %v, want a refusal naming the setting", k, v, err)
		}
	}
}

// The pool size is a setting: unset leaves the adapter's default (0), a number outside 1–1000 is
// refused.
func TestDatabaseMaxConns(t *testing.T) {
	if c, err := load(map[string]string{}); err != nil || c.DatabaseMaxConns != 0 {
		t.Fatalf("default = %d, %v", c.DatabaseMaxConns, err)
	}
	if c, err := load(map[string]string{"BETTERKEY_DATABASE_MAX_CONNS": "40"}); err != nil || c.DatabaseMaxConns != 40 {
		t.Fatalf("set = %d, %v", c.DatabaseMaxConns, err)
	}
	for _, v := range []string{"-3", "5000"} {
		if _, err := load(map[string]string{"BETTERKEY_DATABASE_MAX_CONNS": v}); err == nil || !strings.Contains(err.Error(), "DATABASE_MAX_CONNS") {
			t.Errorf("%s: err = %v, want a refusal naming the setting", v, err)
		}
	}
}
