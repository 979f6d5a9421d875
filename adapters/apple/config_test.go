package apple_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/apple"
)

func TestConfigValidate(t *testing.T) {
	ok := apple.Config{Audiences: []string{phoneAud}}
	tests := []struct {
		name    string
		edit    func(*apple.Config)
		wantErr bool
	}{
		{"defaults with an audience", func(*apple.Config) {}, false},
		{"no audience", func(c *apple.Config) { c.Audiences = nil }, true},
		{"empty audience entry", func(c *apple.Config) { c.Audiences = []string{phoneAud, ""} }, true},
		{"empty issuer entry", func(c *apple.Config) { c.Issuers = []string{""} }, true},
		{"relative jwks url", func(c *apple.Config) { c.JWKSURL = "/auth/keys" }, true},
		{"ftp jwks url", func(c *apple.Config) { c.JWKSURL = "ftp://appleid.apple.com/auth/keys" }, true},
		{"leeway 60s", func(c *apple.Config) { c.Leeway = 60 * time.Second }, false},
		{"leeway 61s", func(c *apple.Config) { c.Leeway = 61 * time.Second }, true},
		{"negative leeway", func(c *apple.Config) { c.Leeway = -time.Second }, true},
		{"negative refetch interval", func(c *apple.Config) { c.UnknownKIDRefetchInterval = -time.Second }, true},
		{"http timeout too long", func(c *apple.Config) { c.HTTPTimeout = time.Minute }, true},
		{"max stale below ttl", func(c *apple.Config) { c.MaxStale = time.Minute }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tt.wantErr)
			}
			if _, nerr := apple.New(c, nil); (nerr != nil) != tt.wantErr {
				t.Fatalf("New() error = %v, want error %v", nerr, tt.wantErr)
			}
		})
	}
}

func TestConfigWithDefaults(t *testing.T) {
	want := apple.Config{
		JWKSURL: apple.DefaultJWKSURL, Issuers: []string{apple.DefaultIssuer}, Leeway: 60 * time.Second,
		CacheTTL: 30 * time.Minute, UnknownKIDRefetchInterval: 30 * time.Second,
		HTTPTimeout: 5 * time.Second, MaxStale: 24 * time.Hour,
	}
	if diff := cmp.Diff(apple.Config{}.WithDefaults(), want); diff != "" {
		t.Errorf("WithDefaults (-got +want):\n%s", diff)
	}
}

func TestConfigClampsCacheTTL(t *testing.T) {
	tests := []struct {
		in, want time.Duration
	}{
		{0, 30 * time.Minute},
		{time.Minute, 15 * time.Minute},
		{20 * time.Minute, 20 * time.Minute},
		{6 * time.Hour, 60 * time.Minute},
	}
	for _, tt := range tests {
		got := apple.Config{CacheTTL: tt.in}.WithDefaults().CacheTTL
		if diff := cmp.Diff(got, tt.want); diff != "" {
			t.Errorf("CacheTTL %s (-got +want):\n%s", tt.in, diff)
		}
	}
}
