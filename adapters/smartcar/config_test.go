package smartcar_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/smartcar"
	"github.com/betterkey/backend/domain"
)

func TestConfigDefaults(t *testing.T) {
	got := smartcar.Config{ConnectURL: "https://connect.example/", ClientID: "id", ClientSecret: domain.NewSecret("s"), RedirectURI: redirectURI}.WithDefaults()
	want := []any{"https://connect.example", smartcar.DefaultAuthURL, smartcar.DefaultAPIURL, smartcar.ModeLive,
		domain.DefaultConnectScopes(), smartcar.Timeouts{Token: 10 * time.Second, Read: 30 * time.Second, Command: 310 * time.Second},
		smartcar.DefaultUserAgent}
	if diff := cmp.Diff([]any{got.ConnectURL, got.AuthURL, got.APIURL, got.Mode, got.Scopes, got.Timeouts, got.UserAgent}, want); diff != "" {
		t.Errorf("(-got +want):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := smartcar.Config{ClientID: "id", ClientSecret: domain.NewSecret("s"), RedirectURI: "sc8229df9f://exchange"}
	for name, tc := range map[string]struct {
		mod  func(*smartcar.Config)
		want string
	}{
		"no client id":       {func(c *smartcar.Config) { c.ClientID = "" }, "client id is required"},
		"no secret":          {func(c *smartcar.Config) { c.ClientSecret = domain.Secret{} }, "client secret is required"},
		"relative redirect":  {func(c *smartcar.Config) { c.RedirectURI = "/callback" }, "redirect uri"},
		"fragment":           {func(c *smartcar.Config) { c.RedirectURI = "https://a.example/cb#x" }, "redirect uri"},
		"api url with query": {func(c *smartcar.Config) { c.APIURL = "https://api.example?x=1" }, "api url"},
		"ftp auth url":       {func(c *smartcar.Config) { c.AuthURL = "ftp://auth.example" }, "auth url"},
		"mode":               {func(c *smartcar.Config) { c.Mode = "sandbox" }, "mode"},
		"scope with space":   {func(c *smartcar.Config) { c.Scopes = []string{"read_security read_vin"} }, "scopes"},
		"huge timeout":       {func(c *smartcar.Config) { c.Timeouts.Command = time.Hour }, "command timeout"},
		"unknown api":        {func(c *smartcar.Config) { c.API = "v4" }, "api must be v2 or v3"},
		"v3 without the amt": {func(c *smartcar.Config) { c.API = smartcar.APIv3 }, "management token"},
		"http vehicle url":   {func(c *smartcar.Config) { c.VehicleURL = "smartcar.example" }, "vehicle url"},
	} {
		c := ok
		tc.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want it to mention %q", name, err, tc.want)
		}
		if _, err := smartcar.New(c, nil); err == nil {
			t.Errorf("%s: New accepted the config", name)
		}
	}
	if err := ok.Validate(); err != nil {
		t.Errorf("a custom-scheme redirect uri (mobile Connect) is valid: %v", err)
	}
}

func TestConfigPrintsNoSecret(t *testing.T) {
	c := smartcar.Config{ClientSecret: domain.NewSecret("CLIENT-SECRET-CANARY"), ManagementToken: domain.NewSecret("AMT-CANARY")}
	if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, "CANARY") {
		t.Errorf("config printed its secret: %s", s)
	}
}
