package apple_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/apple"
	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/test/fakeclock"
)

const (
	tokenTeamID = "TEAM123456"
	tokenKeyID  = "KEY1234567"
)

// tokenEnv is a simulated Apple behind real HTTP, a proxy in front of it that records every form
// the token and revoke endpoints receive and can stall or rewrite answers, and a token client.
type tokenEnv struct {
	sim   *applesim.Simulator
	srv   *httptest.Server
	clock *fakeclock.Clock
	v     *apple.Verifier
	tc    *apple.TokenClient
	p8    []byte

	mu      sync.Mutex
	forms   []url.Values
	stall   bool                 // token and revoke requests get no answer until the client gives up
	rewrite func(map[string]any) // edits a 200 answer of the token endpoint
}

func newTokenEnv(t *testing.T) *tokenEnv {
	t.Helper()
	e := &tokenEnv{clock: fakeclock.New(start)}
	sim, err := applesim.New(applesim.Options{Keys: 2, Now: e.clock.Now})
	if err != nil {
		t.Fatalf("new simulator: %v", err)
	}
	e.sim = sim
	if e.p8, err = sim.GenerateClientKey(tokenTeamID, tokenKeyID, phoneAud, watchAud); err != nil {
		t.Fatalf("generate client key: %v", err)
	}
	release := make(chan struct{})
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.serve(w, r, release)
	}))
	t.Cleanup(func() {
		close(release)
		sim.Close()
		e.srv.Close()
	})
	if e.v, err = apple.New(apple.Config{JWKSURL: e.srv.URL + "/auth/keys", Audiences: []string{phoneAud, watchAud}}, e.srv.Client()); err != nil {
		t.Fatalf("new verifier: %v", err)
	}
	e.v.SetNow(e.clock.Now)
	e.tc = e.client(t, nil)
	return e
}

// client builds a token client on the env's verifier; edit adjusts the config first.
func (e *tokenEnv) client(t *testing.T, edit func(*apple.TokenConfig)) *apple.TokenClient {
	t.Helper()
	cfg := apple.TokenConfig{
		TokenURL: e.srv.URL + "/auth/token", RevokeURL: e.srv.URL + "/auth/revoke",
		TeamID: tokenTeamID, KeyID: tokenKeyID, PrivateKey: domain.NewSecret(string(e.p8)),
	}
	if edit != nil {
		edit(&cfg)
	}
	tc, err := apple.NewTokenClient(cfg, e.v, e.srv.Client())
	if err != nil {
		t.Fatalf("new token client: %v", err)
	}
	return tc
}

func (e *tokenEnv) serve(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
	if r.Method != http.MethodPost {
		e.sim.Handler().ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	r.Body = io.NopCloser(bytes.NewReader(body))
	e.mu.Lock()
	e.forms = append(e.forms, form)
	stall, rewrite := e.stall, e.rewrite
	e.mu.Unlock()
	if stall {
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return
	}
	if rewrite == nil || r.URL.Path != "/auth/token" {
		e.sim.Handler().ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	e.sim.Handler().ServeHTTP(rec, r)
	out := rec.Body.Bytes()
	if rec.Code == http.StatusOK {
		var m map[string]any
		_ = json.Unmarshal(out, &m)
		rewrite(m)
		out, _ = json.Marshal(m)
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(out)
}

// secrets returns the distinct client_secret values Apple received, in order of first use.
func (e *tokenEnv) secrets() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	seen := map[string]bool{}
	for _, f := range e.forms {
		if s := f.Get("client_secret"); !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// assertNoSecrets fails when err repeats anything secret that was sent to Apple (client
// secrets, codes, tokens), the refresh token or the private key.
func (e *tokenEnv) assertNoSecrets(t *testing.T, err error, extra ...string) {
	t.Helper()
	e.mu.Lock()
	for _, f := range e.forms {
		extra = append(extra, f.Get("client_secret"), f.Get("code"), f.Get("token"))
	}
	e.mu.Unlock()
	extra = append(extra, strings.Split(string(e.p8), "\n")[1])
	msg := err.Error()
	for _, s := range extra {
		if s != "" && strings.Contains(msg, s) {
			t.Errorf("error %q contains secret text", msg)
		}
	}
}

// exchange redeems a fresh code for a new subject and fails the test on error.
func (e *tokenEnv) exchange(t *testing.T, tc *apple.TokenClient, clientID string) (string, domain.Secret) {
	t.Helper()
	sub := applesim.NewSubject()
	g, err := tc.Exchange(t.Context(), clientID, domain.NewSecret(e.sim.IssueAuthorizationCode(sub, clientID)))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if g.Subject != sub || g.RefreshToken.Empty() {
		t.Fatalf("Exchange = subject %q, refresh token empty %v; want subject %q and a token", g.Subject, g.RefreshToken.Empty(), sub)
	}
	return sub, g.RefreshToken
}

func TestTokenConfigValidate(t *testing.T) {
	e := newTokenEnv(t)
	valid := apple.TokenConfig{TokenURL: "https://appleid.apple.com/auth/token", RevokeURL: "https://appleid.apple.com/auth/revoke",
		TeamID: tokenTeamID, KeyID: tokenKeyID, PrivateKey: domain.NewSecret(string(e.p8))}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(*apple.TokenConfig)
		ok   bool
	}{
		{name: "valid", edit: func(*apple.TokenConfig) {}, ok: true},
		{name: "no token url", edit: func(c *apple.TokenConfig) { c.TokenURL = "" }},
		{name: "relative revoke url", edit: func(c *apple.TokenConfig) { c.RevokeURL = "/auth/revoke" }},
		{name: "ftp token url", edit: func(c *apple.TokenConfig) { c.TokenURL = "ftp://appleid.apple.com/auth/token" }},
		{name: "no team id", edit: func(c *apple.TokenConfig) { c.TeamID = "" }},
		{name: "no key id", edit: func(c *apple.TokenConfig) { c.KeyID = "" }},
		{name: "no key", edit: func(c *apple.TokenConfig) { c.PrivateKey = domain.Secret{} }},
		{name: "key not pem", edit: func(c *apple.TokenConfig) { c.PrivateKey = domain.NewSecret("notakey-sekrit") }},
		{name: "p-384 key", edit: func(c *apple.TokenConfig) { c.PrivateKey = domain.NewSecret(string(pkcs8PEM(t, p384))) }},
		{name: "timeout too long", edit: func(c *apple.TokenConfig) { c.HTTPTimeout = time.Hour }},
		{name: "negative timeout", edit: func(c *apple.TokenConfig) { c.HTTPTimeout = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.edit(&cfg)
			err := cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tt.ok)
			}
			if err != nil && strings.Contains(err.Error(), "sekrit") {
				t.Errorf("error %q contains the key", err)
			}
		})
	}
	if got := valid.WithDefaults().HTTPTimeout; got != apple.DefaultTokenHTTPTimeout {
		t.Errorf("default HTTPTimeout = %s, want %s", got, apple.DefaultTokenHTTPTimeout)
	}
	if _, err := apple.NewTokenClient(valid, nil, nil); err == nil {
		t.Error("NewTokenClient without a verifier succeeded")
	}
}

func TestExchangeRedeemsCodesForEveryAllowedClient(t *testing.T) {
	e := newTokenEnv(t)
	for _, aud := range []string{phoneAud, watchAud} {
		sub, _ := e.exchange(t, e.tc, aud)
		if !e.sim.HasActiveGrant(sub, aud) {
			t.Errorf("%s: no active grant at Apple after Exchange", aud)
		}
	}
	e.mu.Lock()
	form := e.forms[0]
	e.mu.Unlock()
	keys := slices.Sorted(maps.Keys(form))
	if diff := cmp.Diff(keys, []string{"client_id", "client_secret", "code", "grant_type"}); diff != "" {
		t.Errorf("form keys (-got +want):\n%s", diff)
	}
	if got := form.Get("grant_type"); got != "authorization_code" {
		t.Errorf("grant_type = %q", got)
	}

	// The client secret is Apple's documented ES256 JWT, signed with the .p8 key.
	priv, err := jwt.ParseECPrivateKeyFromPEM(e.p8)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(e.clock.Now)).
		ParseWithClaims(form.Get("client_secret"), claims, func(*jwt.Token) (any, error) { return &priv.PublicKey, nil })
	if err != nil {
		t.Fatalf("parse client secret: %v", err)
	}
	if diff := cmp.Diff(tok.Header, map[string]any{"alg": "ES256", "kid": tokenKeyID}); diff != "" {
		t.Errorf("client secret header (-got +want):\n%s", diff)
	}
	want := jwt.MapClaims{"iss": tokenTeamID, "sub": phoneAud, "aud": "https://appleid.apple.com",
		"iat": float64(start.Unix()), "exp": float64(start.Add(time.Hour).Unix())}
	if diff := cmp.Diff(claims, want); diff != "" {
		t.Errorf("client secret claims (-got +want):\n%s", diff)
	}
}

func TestExchangeRefusedCodes(t *testing.T) {
	tests := []struct {
		name string
		code func(t *testing.T, e *tokenEnv) string
	}{
		{name: "used", code: func(t *testing.T, e *tokenEnv) string {
			c := e.sim.IssueAuthorizationCode(applesim.NewSubject(), phoneAud)
			if _, err := e.tc.Exchange(t.Context(), phoneAud, domain.NewSecret(c)); err != nil {
				t.Fatalf("first Exchange: %v", err)
			}
			return c
		}},
		{name: "expired", code: func(_ *testing.T, e *tokenEnv) string {
			c := e.sim.IssueAuthorizationCode(applesim.NewSubject(), phoneAud)
			e.clock.Advance(5*time.Minute + time.Second)
			return c
		}},
		{name: "issued to another client", code: func(_ *testing.T, e *tokenEnv) string {
			return e.sim.IssueAuthorizationCode(applesim.NewSubject(), watchAud)
		}},
		{name: "unknown", code: func(*testing.T, *tokenEnv) string { return "c0123456789abcdef.0.nope" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTokenEnv(t)
			code := tt.code(t, e)
			_, err := e.tc.Exchange(t.Context(), phoneAud, domain.NewSecret(code))
			if !errors.Is(err, domain.ErrInvalidAuthorizationCode) {
				t.Fatalf("Exchange error = %v, want ErrInvalidAuthorizationCode", err)
			}
			e.assertNoSecrets(t, err, code)
		})
	}
}

func TestExchangeRefusesWithoutCallingApple(t *testing.T) {
	e := newTokenEnv(t)
	code := e.sim.IssueAuthorizationCode(applesim.NewSubject(), "com.other.app")
	_, err := e.tc.Exchange(t.Context(), "com.other.app", domain.NewSecret(code))
	if domain.KindOf(err) != domain.KindInvalid {
		t.Errorf("client outside the allowlist: error %v, want kind invalid", err)
	}
	_, err = e.tc.Exchange(t.Context(), phoneAud, domain.Secret{})
	if !errors.Is(err, domain.ErrInvalidAuthorizationCode) {
		t.Errorf("empty code: error %v, want ErrInvalidAuthorizationCode", err)
	}
	if got := e.sim.Stats().TokenRequests; got != 0 {
		t.Errorf("Apple saw %d token requests, want 0", got)
	}
}

func TestExchangeUpstreamFailuresAreUnavailable(t *testing.T) {
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, e *tokenEnv) *apple.TokenClient
		mention string
	}{
		{name: "apple 500", mention: "500", setup: func(_ *testing.T, e *tokenEnv) *apple.TokenClient {
			e.sim.Fail(applesim.FailTokenServerError)
			return e.tc
		}},
		{name: "no answer within the timeout", setup: func(t *testing.T, e *tokenEnv) *apple.TokenClient {
			e.stall = true
			return e.client(t, func(c *apple.TokenConfig) { c.HTTPTimeout = 200 * time.Millisecond })
		}},
		{name: "key apple does not know", mention: "apple refused our client credentials (invalid_client)",
			setup: func(t *testing.T, e *tokenEnv) *apple.TokenClient {
				return e.client(t, func(c *apple.TokenConfig) { c.PrivateKey = domain.NewSecret(string(pkcs8PEM(t, stranger))) })
			}},
		{name: "no refresh token", setup: func(_ *testing.T, e *tokenEnv) *apple.TokenClient {
			e.rewrite = func(m map[string]any) { delete(m, "refresh_token") }
			return e.tc
		}},
		{name: "no id_token", setup: func(_ *testing.T, e *tokenEnv) *apple.TokenClient {
			e.rewrite = func(m map[string]any) { delete(m, "id_token") }
			return e.tc
		}},
		{name: "id_token with a bad signature", setup: func(t *testing.T, e *tokenEnv) *apple.TokenClient {
			e.rewrite = replaceIDToken(flipSignature(t, mintOrFail(t, e.sim, applesim.MintOptions{Audience: phoneAud})))
			return e.tc
		}},
		{name: "id_token for the other client", setup: func(t *testing.T, e *tokenEnv) *apple.TokenClient {
			e.rewrite = replaceIDToken(mintOrFail(t, e.sim, applesim.MintOptions{Audience: watchAud}))
			return e.tc
		}},
		{name: "expired id_token", setup: func(t *testing.T, e *tokenEnv) *apple.TokenClient {
			e.rewrite = replaceIDToken(mintOrFail(t, e.sim, applesim.MintOptions{Audience: phoneAud, IssuedAt: start.Add(-25 * time.Hour)}))
			return e.tc
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTokenEnv(t)
			e.mu.Lock()
			tc := tt.setup(t, e)
			e.mu.Unlock()
			code := e.sim.IssueAuthorizationCode(applesim.NewSubject(), phoneAud)
			_, err := tc.Exchange(t.Context(), phoneAud, domain.NewSecret(code))
			if !errors.Is(err, domain.ErrUnavailable) || errors.Is(err, domain.ErrInvalidAuthorizationCode) {
				t.Fatalf("Exchange error = %v, want ErrUnavailable only", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			e.assertNoSecrets(t, err, code)
		})
	}
}

func TestClientSecretIsReusedUntilNearExpiry(t *testing.T) {
	e := newTokenEnv(t)
	var wg sync.WaitGroup
	for range 8 {
		code := domain.NewSecret(e.sim.IssueAuthorizationCode(applesim.NewSubject(), phoneAud))
		wg.Go(func() {
			if _, err := e.tc.Exchange(t.Context(), phoneAud, code); err != nil {
				t.Errorf("concurrent Exchange: %v", err)
			}
		})
	}
	wg.Wait()
	if got := len(e.secrets()); got != 1 {
		t.Fatalf("%d distinct client secrets after concurrent exchanges, want 1", got)
	}
	e.exchange(t, e.tc, watchAud) // one secret per client id: sub must equal client_id
	e.clock.Advance(49 * time.Minute)
	e.exchange(t, e.tc, phoneAud) // 11 minutes left: still reused
	if got := len(e.secrets()); got != 2 {
		t.Fatalf("%d distinct client secrets before the renewal margin, want 2", got)
	}
	e.clock.Advance(2 * time.Minute)
	e.exchange(t, e.tc, phoneAud) // 9 minutes left: re-minted
	if got := len(e.secrets()); got != 3 {
		t.Fatalf("%d distinct client secrets after the renewal margin, want 3", got)
	}
}

func TestRevoke(t *testing.T) {
	e := newTokenEnv(t)
	sub, refresh := e.exchange(t, e.tc, phoneAud)
	if err := e.tc.Revoke(t.Context(), phoneAud, refresh); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if e.sim.HasActiveGrant(sub, phoneAud) {
		t.Error("grant still active after Revoke")
	}
	if err := e.tc.Revoke(t.Context(), phoneAud, refresh); err != nil {
		t.Errorf("second Revoke: %v, want nil (Apple answers 200 for invalid tokens)", err)
	}
	e.mu.Lock()
	got := e.forms[len(e.forms)-1]
	e.mu.Unlock()
	if got.Get("token_type_hint") != "refresh_token" || got.Get("token") != refresh.Reveal() {
		t.Errorf("revoke form has token_type_hint %q and the refresh token %v", got.Get("token_type_hint"), got.Get("token") == refresh.Reveal())
	}
	if err := e.tc.Revoke(t.Context(), phoneAud, domain.Secret{}); domain.KindOf(err) != domain.KindInvalid {
		t.Errorf("Revoke of an empty token: %v, want kind invalid", err)
	}
}

func TestRevokeFailures(t *testing.T) {
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		setup     func(t *testing.T, e *tokenEnv) *apple.TokenClient
		status    int
		code      string
		temporary bool
	}{
		{name: "apple 500", status: 500, code: "server_error", temporary: true, setup: func(_ *testing.T, e *tokenEnv) *apple.TokenClient {
			e.sim.Fail(applesim.FailTokenServerError)
			return e.tc
		}},
		{name: "no answer within the timeout", temporary: true, setup: func(t *testing.T, e *tokenEnv) *apple.TokenClient {
			e.stall = true
			return e.client(t, func(c *apple.TokenConfig) { c.HTTPTimeout = 200 * time.Millisecond })
		}},
		{name: "key apple does not know", status: 400, code: "invalid_client", temporary: true,
			setup: func(t *testing.T, e *tokenEnv) *apple.TokenClient {
				return e.client(t, func(c *apple.TokenConfig) { c.PrivateKey = domain.NewSecret(string(pkcs8PEM(t, stranger))) })
			}},
		{name: "token of another client", status: 400, code: "invalid_grant", temporary: false,
			setup: func(_ *testing.T, e *tokenEnv) *apple.TokenClient { return e.tc }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTokenEnv(t)
			sub, refresh := e.exchange(t, e.tc, watchAud)
			e.mu.Lock()
			tc := tt.setup(t, e)
			e.mu.Unlock()
			err := tc.Revoke(t.Context(), phoneAud, refresh)
			ue, ok := errors.AsType[*domain.UpstreamError](err)
			if !ok {
				t.Fatalf("Revoke error = %v, want *domain.UpstreamError", err)
			}
			type class struct {
				Op, Code  string
				Status    int
				Temporary bool
			}
			got := class{ue.Op, ue.Code, ue.Status, ue.Temporary()}
			if diff := cmp.Diff(got, class{"revoke apple token", tt.code, tt.status, tt.temporary}); diff != "" {
				t.Errorf("classification (-got +want):\n%s", diff)
			}
			if !errors.Is(err, domain.ErrUnavailable) {
				t.Errorf("Revoke error %v does not wrap ErrUnavailable", err)
			}
			if !e.sim.HasActiveGrant(sub, watchAud) {
				t.Error("a failed Revoke revoked the grant")
			}
			e.assertNoSecrets(t, err, refresh.Reveal())
		})
	}
}

// replaceIDToken returns a rewrite that swaps Apple's id_token for tok.
func replaceIDToken(tok string) func(map[string]any) {
	return func(m map[string]any) { m["id_token"] = tok }
}

// mintOrFail signs an identity token with the simulator's current key.
func mintOrFail(t *testing.T, sim *applesim.Simulator, o applesim.MintOptions) string {
	t.Helper()
	tok, err := sim.Mint(o)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

// pkcs8PEM encodes k as a .p8 file.
func pkcs8PEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
