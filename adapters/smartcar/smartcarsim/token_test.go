package smartcarsim_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
)

// oauthErr is the (status, error) pair of a token endpoint answer.
func oauthErr(r reply) [2]any { return [2]any{r.status, r.body["error"]} }

func TestTokenEndpointAuthenticatesTheClient(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}
	for name, creds := range map[string][2]string{
		"no basic auth": {"", ""},
		"wrong secret":  {e.sim.ClientID(), "wrong"},
		"wrong client":  {"someone-else", e.sim.ClientSecret()},
	} {
		r := e.token(t, "/oauth/token", creds[0], creds[1], form)
		if diff := cmp.Diff(oauthErr(r), [2]any{401, "invalid_client"}); diff != "" || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s (-got +want):\n%s", name, diff)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth/token", strings.NewReader(`{"grant_type":"refresh_token"}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(e.sim.ClientID(), e.sim.ClientSecret())
	if diff := cmp.Diff(oauthErr(do(t, req)), [2]any{400, "invalid_request"}); diff != "" {
		t.Errorf("json body (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(oauthErr(e.grant(t, url.Values{})), [2]any{400, "invalid_request"}); diff != "" {
		t.Errorf("no grant_type (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(oauthErr(e.grant(t, url.Values{"grant_type": {"password"}})), [2]any{400, "unsupported_grant_type"}); diff != "" {
		t.Errorf("password grant (-got +want):\n%s", diff)
	}
	if n := e.sim.Stats().TokenRequests; n != 6 {
		t.Errorf("token requests = %d, want 6", n)
	}
}

func TestCodeExchange(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	e.sim.CreateUser(smartcarsim.DefaultFleet()...)
	_, back := e.authorize(t)
	code := back.Get("code")
	exchange := func(path, redirect string) reply {
		return e.token(t, path, e.sim.ClientID(), e.sim.ClientSecret(),
			url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}})
	}
	if diff := cmp.Diff(oauthErr(exchange("/oauth/token", "https://other.example/cb")), [2]any{400, "invalid_grant"}); diff != "" {
		t.Errorf("other redirect uri (-got +want):\n%s", diff)
	}
	r := exchange("/oauth/token/", appRedirect) // the Go SDK's trailing slash
	if r.status != http.StatusOK {
		t.Fatalf("exchange: %d %s", r.status, r.raw)
	}
	if r.body["token_type"] != "Bearer" || r.body["expires_in"] != 7200.0 || len(r.body["access_token"].(string)) != 36 ||
		len(r.body["refresh_token"].(string)) != 36 || r.header.Get("Cache-Control") != "no-store" || len(r.body) != 4 {
		t.Errorf("token response %v", r.body)
	}
	reused := exchange("/oauth/token", appRedirect)
	if diff := cmp.Diff(oauthErr(reused), [2]any{400, "invalid_request"}); diff != "" {
		t.Errorf("reused code (-got +want):\n%s", diff)
	}
	if reused.body["error_description"] != "Invalid code: "+code+"." {
		t.Errorf("description %q, want Smartcar's echo of the code", reused.body["error_description"])
	}
	_, back = e.authorize(t)
	code = back.Get("code")
	e.clock.Advance(smartcarsim.CodeLifetime)
	if diff := cmp.Diff(oauthErr(exchange("/oauth/token", appRedirect)), [2]any{400, "invalid_request"}); diff != "" {
		t.Errorf("expired code (-got +want):\n%s", diff)
	}
	if n := e.sim.Stats().CodeExchanges; n != 1 {
		t.Errorf("code exchanges = %d, want 1", n)
	}
}

func TestRefreshRotation(t *testing.T) {
	for _, grace := range []time.Duration{0, 10 * time.Minute} {
		e := newEnv(t, smartcarsim.Options{RefreshGrace: grace})
		if grace == 0 {
			grace = smartcarsim.DefaultRefreshGrace
		}
		_, access, old := e.connect(t)
		refresh := func(rt string) reply {
			return e.grant(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		}
		first := refresh(old)
		if first.status != http.StatusOK || first.body["refresh_token"] == old || first.body["access_token"] == access {
			t.Fatalf("refresh: %d %v", first.status, first.body)
		}
		e.clock.Advance(grace - time.Second)
		if r := refresh(old); r.status != http.StatusOK {
			t.Errorf("grace %v: old token inside the grace: %d", grace, r.status)
		}
		if r := e.api(t, http.MethodGet, "/v2.0/user", access, ""); r.status != http.StatusOK {
			t.Errorf("the first access token stops working on refresh: %d", r.status)
		}
		e.clock.Advance(time.Second)
		dead := refresh(old)
		if diff := cmp.Diff(oauthErr(dead), [2]any{400, "invalid_grant"}); diff != "" {
			t.Errorf("grace %v: old token after the grace (-got +want):\n%s", grace, diff)
		}
		if dead.body["error_description"] != "Invalid refresh_token: "+old+"." {
			t.Errorf("description %q, want Smartcar's echo", dead.body["error_description"])
		}
		next := first.body["refresh_token"].(string)
		e.clock.Advance(smartcarsim.RefreshTokenLifetime - grace - time.Second)
		if r := refresh(next); r.status != http.StatusOK {
			t.Errorf("unused token a second before 60 days: %d", r.status)
		}
		if n := e.sim.Stats().Refreshes; n != 3 {
			t.Errorf("refreshes = %d, want 3", n)
		}
	}
}

func TestRefreshTokenDiesAfter60DaysAndOnRevocation(t *testing.T) {
	e := newEnv(t, smartcarsim.Options{})
	_, _, rt := e.connect(t)
	e.clock.Advance(smartcarsim.RefreshTokenLifetime)
	if diff := cmp.Diff(oauthErr(e.grant(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})), [2]any{400, "invalid_grant"}); diff != "" {
		t.Errorf("after 60 days (-got +want):\n%s", diff)
	}
	u, access, rt := e.connect(t)
	if err := e.sim.RevokeConsent(u.ID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(oauthErr(e.grant(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})), [2]any{400, "invalid_grant"}); diff != "" {
		t.Errorf("after revocation (-got +want):\n%s", diff)
	}
	if r := e.api(t, http.MethodGet, "/v2.0/user", access, ""); r.status != http.StatusUnauthorized {
		t.Errorf("access token after revocation: %d", r.status)
	}
}
