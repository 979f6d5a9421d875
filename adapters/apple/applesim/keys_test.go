package applesim_test

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/test/fakeclock"
)

const appAud = "com.betterkey.app"

var start = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

// newSim starts a simulator mounted under /apple, as the dev server mounts it, and returns it
// with the base URL of its routes.
func newSim(t *testing.T, opts applesim.Options) (*applesim.Simulator, string, *fakeclock.Clock) {
	t.Helper()
	clock := fakeclock.New(start)
	opts.Now = clock.Now
	if opts.DefaultAudience == "" {
		opts.DefaultAudience = appAud
	}
	if opts.Keys == 0 {
		opts.Keys = 2
	}
	sim, err := applesim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/apple/", http.StripPrefix("/apple", sim.Handler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	return sim, srv.URL + "/apple", clock
}

type jwkSet struct {
	Keys []map[string]string `json:"keys"`
}

// getKeys fetches the key set and decodes it into RSA public keys by kid.
func getKeys(t *testing.T, base string) (jwkSet, map[string]*rsa.PublicKey) {
	t.Helper()
	resp, err := http.Get(base + "/auth/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /auth/keys: status %d", resp.StatusCode)
	}
	var set jwkSet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		n, err := base64.RawURLEncoding.DecodeString(k["n"])
		if err != nil {
			t.Fatal(err)
		}
		keys[k["kid"]] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	}
	return set, keys
}

func TestKeySetLooksLikeApples(t *testing.T) {
	sim, base, _ := newSim(t, applesim.Options{Keys: 3})
	set, keys := getKeys(t, base)
	if got := len(set.Keys); got != 3 {
		t.Fatalf("keys = %d, want 3", got)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k["kid"])
		if diff := cmp.Diff([]string{k["kty"], k["use"], k["alg"], k["e"]}, []string{"RSA", "sig", "RS256", "AQAB"}); diff != "" {
			t.Errorf("key %s members (-got +want):\n%s", k["kid"], diff)
		}
		if got := keys[k["kid"]].N.BitLen(); got != 2048 {
			t.Errorf("key %s has %d bits, want 2048", k["kid"], got)
		}
		if len(k["kid"]) != 10 {
			t.Errorf("kid %q is not Apple-shaped", k["kid"])
		}
	}
	if diff := cmp.Diff(kids, sim.KIDs()); diff != "" {
		t.Errorf("kids (-got +want):\n%s", diff)
	}
	if got := sim.JWKSFetches(); got != 1 {
		t.Errorf("JWKSFetches = %d, want 1", got)
	}
}

func TestRotateAddRemoveKeys(t *testing.T) {
	sim, base, _ := newSim(t, applesim.Options{Keys: 3})
	before := sim.KIDs()
	newKID, err := sim.RotateKeys()
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]string{}, before[1:]...), newKID)
	if diff := cmp.Diff(sim.KIDs(), want); diff != "" {
		t.Errorf("kids after rotation (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(sim.CurrentKID(), newKID); diff != "" {
		t.Errorf("current kid (-got +want):\n%s", diff)
	}
	added, err := sim.AddKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.RemoveKey(before[1]); err != nil {
		t.Fatal(err)
	}
	if err := sim.RemoveKey("nope"); err == nil {
		t.Error("RemoveKey of an unknown kid succeeded")
	}
	_, keys := getKeys(t, base)
	for _, kid := range []string{before[2], newKID, added} {
		if keys[kid] == nil {
			t.Errorf("kid %s not published", kid)
		}
	}
	for _, kid := range before[:2] {
		if keys[kid] != nil {
			t.Errorf("kid %s still published", kid)
		}
	}
	for _, kid := range sim.KIDs()[1:] {
		if err := sim.RemoveKey(kid); err != nil {
			t.Fatal(err)
		}
	}
	if err := sim.RemoveKey(sim.CurrentKID()); err == nil {
		t.Error("removing the last key succeeded")
	}
}

func TestInjectedJWKSFailures(t *testing.T) {
	tests := []struct {
		fail       applesim.Failure
		wantStatus int
		wantBody   string
	}{
		{applesim.FailJWKSServerError, http.StatusInternalServerError, "internal server error\n"},
		{applesim.FailJWKSMalformed, http.StatusOK, `{"keys":`},
		{applesim.FailJWKSEmpty, http.StatusOK, `{"keys":[]}`},
	}
	for _, tt := range tests {
		t.Run(string(tt.fail), func(t *testing.T) {
			sim, base, _ := newSim(t, applesim.Options{})
			sim.Fail(tt.fail)
			resp, err := http.Get(base + "/auth/keys")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if diff := cmp.Diff([]any{resp.StatusCode, string(body)}, []any{tt.wantStatus, tt.wantBody}); diff != "" {
				t.Errorf("response (-got +want):\n%s", diff)
			}
			sim.Fail(applesim.FailNone)
			getKeys(t, base)
			if got := sim.Stats().JWKSFetches; got != 2 {
				t.Errorf("JWKSFetches = %d, want 2", got)
			}
		})
	}
}

func TestHangAndSlowJWKS(t *testing.T) {
	sim, base, _ := newSim(t, applesim.Options{SlowDelay: 20 * time.Millisecond})
	sim.Fail(applesim.FailJWKSHang)
	client := &http.Client{Timeout: 50 * time.Millisecond}
	if resp, err := client.Get(base + "/auth/keys"); err == nil {
		_ = resp.Body.Close()
		t.Fatal("hanging key set answered")
	}
	sim.Fail(applesim.FailJWKSSlow)
	if _, keys := getKeys(t, base); len(keys) != 2 {
		t.Errorf("slow key set returned %d keys, want 2", len(keys))
	}
}

func TestMintedTokenHasNativeShape(t *testing.T) {
	sim, base, _ := newSim(t, applesim.Options{})
	_, keys := getKeys(t, base)
	tok, err := sim.Mint(applesim.MintOptions{
		Nonce: applesim.NonceClaim("raw"), Email: "a@privaterelay.appleid.com", EmailVerified: true,
		IsPrivateEmail: "true", AuthorizationCode: "c123",
	})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse(tok, func(t *jwt.Token) (any, error) { return keys[t.Header["kid"].(string)], nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(func() time.Time { return start }))
	if err != nil {
		t.Fatalf("parse minted token: %v", err)
	}
	if diff := cmp.Diff(parsed.Header, map[string]any{"alg": "RS256", "kid": sim.CurrentKID()}); diff != "" {
		t.Errorf("header (-got +want):\n%s", diff)
	}
	claims := parsed.Claims.(jwt.MapClaims)
	want := jwt.MapClaims{
		"iss": applesim.Issuer, "aud": appAud, "sub": applesim.DevSubject,
		"iat": float64(start.Unix()), "exp": float64(start.Add(24 * time.Hour).Unix()), "auth_time": float64(start.Unix()),
		"nonce": applesim.NonceClaim("raw"), "nonce_supported": true, "real_user_status": float64(2),
		"email": "a@privaterelay.appleid.com", "email_verified": true, "is_private_email": "true",
		"c_hash": claims["c_hash"],
	}
	if diff := cmp.Diff(claims, want); diff != "" {
		t.Errorf("claims (-got +want):\n%s", diff)
	}
	if strings.Contains(tok, "typ") {
		t.Error("token carries a typ header Apple does not send")
	}
}

func TestMintWithUnknownKIDAndRemovedClaims(t *testing.T) {
	sim, _, _ := newSim(t, applesim.Options{})
	tok, err := sim.Mint(applesim.MintOptions{KID: "NotAKey123", ExtraClaims: map[string]any{"sub": nil, "x": 1}})
	if err != nil {
		t.Fatal(err)
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	claims := parsed.Claims.(jwt.MapClaims)
	if diff := cmp.Diff([]any{parsed.Header["kid"], claims["sub"], claims["x"]}, []any{"NotAKey123", nil, float64(1)}); diff != "" {
		t.Errorf("kid, sub, x (-got +want):\n%s", diff)
	}
	if _, err := sim.PublicKeyPEM("NotAKey123"); err == nil {
		t.Error("PublicKeyPEM of an unknown kid succeeded")
	}
	pemKey, err := sim.PublicKeyPEM(sim.CurrentKID())
	if err != nil || !strings.HasPrefix(string(pemKey), "-----BEGIN PUBLIC KEY-----") {
		t.Errorf("PublicKeyPEM = %q, %v", pemKey, err)
	}
}
