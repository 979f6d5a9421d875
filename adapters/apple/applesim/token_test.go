package applesim_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/test/fakeclock"
)

const (
	teamID = "TEAM123456"
	keyID  = "KEY1234567"
)

// post returns status, headers and the decoded JSON body (nil when empty).
func post(t *testing.T, url, contentType, body string) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("decode %q: %v", raw, err)
		}
	}
	return resp.StatusCode, resp.Header, out
}

func postForm(t *testing.T, url string, form url.Values) (int, map[string]any) {
	t.Helper()
	status, _, body := post(t, url, "application/x-www-form-urlencoded", form.Encode())
	return status, body
}

func TestSimIdentityTokenEndpointHashesTheRawNonce(t *testing.T) {
	_, base, _ := newSim(t, applesim.Options{})
	_, keys := getKeys(t, base)
	status, _, body := post(t, base+"/sim/identity-token", "application/json", `{"nonce":"raw-server-nonce"}`)
	if status != http.StatusOK {
		t.Fatalf("status %d, body %v", status, body)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(body["identity_token"].(string), claims,
		func(t *jwt.Token) (any, error) { return keys[t.Header["kid"].(string)], nil },
		jwt.WithTimeFunc(func() time.Time { return start })); err != nil {
		t.Fatalf("parse: %v", err)
	}
	h := sha256.Sum256([]byte(body["authorization_code"].(string)))
	got := []any{claims["nonce"], claims["sub"], claims["aud"], claims["email_verified"], claims["is_private_email"], claims["c_hash"]}
	want := []any{applesim.NonceClaim("raw-server-nonce"), applesim.DevSubject, appAud, "true", "true", base64.RawURLEncoding.EncodeToString(h[:16])}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("nonce, sub, aud, email_verified, is_private_email, c_hash (-got +want):\n%s", diff)
	}
	if !strings.HasSuffix(claims["email"].(string), "@privaterelay.appleid.com") {
		t.Errorf("email %v is not a relay address", claims["email"])
	}
	if status, _, _ := post(t, base+"/sim/identity-token", "application/json", `{"bogus":1}`); status != http.StatusBadRequest {
		t.Errorf("unknown field: status %d, want 400", status)
	}
}

// tokenEnv is a simulator with a registered client key and a secret minter.
type tokenEnv struct {
	sim   *applesim.Simulator
	base  string
	clock *fakeclock.Clock
	p8    []byte
}

func newTokenEnv(t *testing.T, opts applesim.Options) *tokenEnv {
	t.Helper()
	sim, base, clock := newSim(t, opts)
	p8, err := sim.GenerateClientKey(teamID, keyID, appAud)
	if err != nil {
		t.Fatal(err)
	}
	return &tokenEnv{sim: sim, base: base, clock: clock, p8: p8}
}

func (e *tokenEnv) secret(t *testing.T, team, kid, sub string, iat time.Time, life time.Duration) string {
	t.Helper()
	s, err := applesim.MintClientSecret(e.p8, team, kid, sub, iat, life)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *tokenEnv) form(t *testing.T, kv ...string) url.Values {
	t.Helper()
	f := url.Values{"client_id": {appAud}, "client_secret": {e.secret(t, teamID, keyID, appAud, e.clock.Now(), 5*time.Minute)}}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return f
}

func TestTokenEndpointClientAuthentication(t *testing.T) {
	e := newTokenEnv(t, applesim.Options{})
	code := e.sim.IssueAuthorizationCode(applesim.DevSubject, appAud)
	now := e.clock.Now()
	withSecret := func(s string) url.Values {
		f := e.form(t, "grant_type", "authorization_code", "code", code)
		f.Set("client_secret", s)
		return f
	}
	tests := []struct {
		name string
		form url.Values
		want map[string]any
	}{
		{"no client", url.Values{"grant_type": {"authorization_code"}, "code": {code}}, map[string]any{"error": "invalid_client"}},
		{"wrong team", withSecret(e.secret(t, "OTHERTEAM1", keyID, appAud, now, time.Hour)), map[string]any{"error": "invalid_client"}},
		{"unknown key id", withSecret(e.secret(t, teamID, "NOKEY12345", appAud, now, time.Hour)), map[string]any{"error": "invalid_client"}},
		{"sub is not client_id", withSecret(e.secret(t, teamID, keyID, "com.other.app", now, time.Hour)), map[string]any{"error": "invalid_client"}},
		{"expired", withSecret(e.secret(t, teamID, keyID, appAud, now.Add(-2*time.Hour), time.Hour)), map[string]any{"error": "invalid_client"}},
		{"over six months", withSecret(e.secret(t, teamID, keyID, appAud, now, applesim.MaxClientSecretLifetime+time.Hour)), map[string]any{"error": "invalid_client"}},
		{"not a jwt", withSecret("garbage"), map[string]any{"error": "invalid_client"}},
		{"missing grant type", e.form(t, "code", code), map[string]any{"error": "invalid_request", "error_description": "grant_type is required"}},
		{"unsupported grant", e.form(t, "grant_type", "password"), map[string]any{"error": "unsupported_grant_type"}},
		{"missing code", e.form(t, "grant_type", "authorization_code"), map[string]any{"error": "invalid_request", "error_description": "code is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := postForm(t, e.base+"/auth/token", tt.form)
			if diff := cmp.Diff([]any{status, body}, []any{http.StatusBadRequest, tt.want}); diff != "" {
				t.Errorf("response (-got +want):\n%s", diff)
			}
		})
	}
	status, hdr, body := post(t, e.base+"/auth/token", "application/json", `{}`)
	if diff := cmp.Diff([]any{status, body["error"], hdr.Get("Cache-Control"), hdr.Get("Pragma")},
		[]any{http.StatusBadRequest, "invalid_request", "no-store", "no-cache"}); diff != "" {
		t.Errorf("json body (-got +want):\n%s", diff)
	}
	dup := e.form(t, "grant_type", "authorization_code", "code", code)
	dup.Add("code", code)
	if status, body := postForm(t, e.base+"/auth/token", dup); status != http.StatusBadRequest || body["error"] != "invalid_request" {
		t.Errorf("duplicate parameter: %d %v", status, body)
	}
}

func TestAuthorizationCodeIsSingleUseAndShortLived(t *testing.T) {
	e := newTokenEnv(t, applesim.Options{})
	code := e.sim.IssueAuthorizationCode(applesim.DevSubject, appAud)

	status, body := postForm(t, e.base+"/auth/token", e.form(t, "grant_type", "authorization_code", "code", code, "redirect_uri", "https://x"))
	if diff := cmp.Diff([]any{status, body["error"]}, []any{http.StatusBadRequest, "invalid_grant"}); diff != "" {
		t.Errorf("native code with redirect_uri (-got +want):\n%s", diff)
	}

	status, body = postForm(t, e.base+"/auth/token", e.form(t, "grant_type", "authorization_code", "code", code))
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, body)
	}
	got := []any{body["token_type"], body["expires_in"], body["refresh_token"] != nil, body["id_token"] != nil}
	if diff := cmp.Diff(got, []any{"Bearer", float64(3600), true, true}); diff != "" {
		t.Errorf("token response (-got +want):\n%s", diff)
	}
	if !e.sim.HasActiveGrant(applesim.DevSubject, appAud) {
		t.Error("no grant after the exchange")
	}

	status, body = postForm(t, e.base+"/auth/token", e.form(t, "grant_type", "authorization_code", "code", code))
	if diff := cmp.Diff([]any{status, body}, []any{http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": "The code has already been used."}}); diff != "" {
		t.Errorf("reuse (-got +want):\n%s", diff)
	}

	late := e.sim.IssueAuthorizationCode(applesim.DevSubject, appAud)
	e.clock.Advance(5 * time.Minute)
	status, body = postForm(t, e.base+"/auth/token", e.form(t, "grant_type", "authorization_code", "code", late))
	if diff := cmp.Diff([]any{status, body}, []any{http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": "The code has expired or has been revoked."}}); diff != "" {
		t.Errorf("expired code (-got +want):\n%s", diff)
	}
	if got := e.sim.Stats().TokenRequests; got != 4 {
		t.Errorf("TokenRequests = %d, want 4", got)
	}
}

func TestRefreshAndRevoke(t *testing.T) {
	e := newTokenEnv(t, applesim.Options{RefreshWithoutIDToken: true})
	code := e.sim.IssueAuthorizationCode(applesim.DevSubject, appAud)
	_, body := postForm(t, e.base+"/auth/token", e.form(t, "grant_type", "authorization_code", "code", code))
	refresh, _ := body["refresh_token"].(string)

	status, body := postForm(t, e.base+"/auth/token", e.form(t, "grant_type", "refresh_token", "refresh_token", refresh))
	got := []any{status, body["access_token"] != nil, body["refresh_token"], body["id_token"]}
	if diff := cmp.Diff(got, []any{http.StatusOK, true, nil, nil}); diff != "" {
		t.Errorf("refresh (-got +want):\n%s", diff)
	}

	revoke := func(form url.Values) (int, map[string]any) { return postForm(t, e.base+"/auth/revoke", form) }
	for _, name := range []string{"live token", "already revoked", "garbage token"} {
		tok := refresh
		if name == "garbage token" {
			tok = "garbage"
		}
		status, body := revoke(e.form(t, "token", tok, "token_type_hint", "refresh_token"))
		if diff := cmp.Diff([]any{status, body}, []any{http.StatusOK, map[string]any(nil)}); diff != "" {
			t.Errorf("%s: revoke (-got +want):\n%s", name, diff)
		}
	}
	if status, body := revoke(url.Values{}); status != http.StatusBadRequest || body["error"] != "invalid_client" {
		t.Errorf("empty revoke payload: %d %v", status, body)
	}
	if e.sim.HasActiveGrant(applesim.DevSubject, appAud) {
		t.Error("grant still active after revoke")
	}
	status, body = postForm(t, e.base+"/auth/token", e.form(t, "grant_type", "refresh_token", "refresh_token", refresh))
	if diff := cmp.Diff([]any{status, body}, []any{http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": "The token has expired or has been revoked."}}); diff != "" {
		t.Errorf("refresh after revoke (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(e.sim.Stats(), applesim.Stats{TokenRequests: 3, RevokeRequests: 4, Revocations: 1}); diff != "" {
		t.Errorf("stats (-got +want):\n%s", diff)
	}

	e.sim.Fail(applesim.FailTokenServerError)
	if status, _ := revoke(e.form(t, "token", refresh)); status != http.StatusInternalServerError {
		t.Errorf("injected failure: status %d, want 500", status)
	}
}

func TestNotifications(t *testing.T) {
	sim, base, _ := newSim(t, applesim.Options{})
	_, keys := getKeys(t, base)
	parse := func(tok string) jwt.MapClaims {
		t.Helper()
		c := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(tok, c, func(t *jwt.Token) (any, error) { return keys[t.Header["kid"].(string)], nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(func() time.Time { return start })); err != nil {
			t.Fatalf("parse notification: %v", err)
		}
		return c
	}
	tok, err := sim.MintNotification(applesim.NotificationOptions{Type: applesim.EventConsentRevoked, JTI: "j1"})
	if err != nil {
		t.Fatal(err)
	}
	c := parse(tok)
	wantEvents := `{"event_time":` + jsonInt(start.UnixMilli()) + `,"sub":"` + applesim.DevSubject + `","type":"consent-revoked"}`
	if diff := cmp.Diff([]any{c["aud"], c["jti"], c["events"]}, []any{appAud, "j1", wantEvents}); diff != "" {
		t.Errorf("aud, jti, events (-got +want):\n%s", diff)
	}
	tok, err = sim.MintNotification(applesim.NotificationOptions{Type: applesim.EventAccountDelete, EventsAsObject: true, EventTimeSeconds: true})
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := parse(tok)["events"].(map[string]any)
	if diff := cmp.Diff([]any{ev["type"], ev["event_time"]}, []any{"account-delete", float64(start.Unix())}); diff != "" {
		t.Errorf("object events (-got +want):\n%s", diff)
	}

	payloads := make(chan string, 2)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b struct{ Payload string }
		_ = json.NewDecoder(r.Body).Decode(&b)
		payloads <- b.Payload
	}))
	t.Cleanup(recv.Close)
	for range 2 { // Apple may deliver twice
		if err := applesim.DeliverNotification(context.Background(), recv.Client(), recv.URL, tok); err != nil {
			t.Fatal(err)
		}
	}
	received := []string{<-payloads, <-payloads}
	if diff := cmp.Diff(received, []string{tok, tok}); diff != "" {
		t.Errorf("deliveries (-got +want):\n%s", diff)
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
