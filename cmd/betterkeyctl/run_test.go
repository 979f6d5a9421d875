package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/connectapi"
	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/adapters/sessiontoken"
	"github.com/betterkey/backend/app/identity"
	"github.com/betterkey/backend/app/keys"
	"github.com/betterkey/backend/app/sessionkeys"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

const (
	testToken = "ctl-test-token-0123456789abcdef0123456789"
	tokenEnv  = "BETTERKEY_TEST_ADMIN_TOKEN"
)

type noApple struct{}

func (noApple) Verify(context.Context, string) (domain.AppleIdentity, error) {
	return domain.AppleIdentity{}, errors.New("verify: unused")
}

type noTokens struct{}

func (noTokens) Issue(ports.AccessClaims) (domain.Secret, error) {
	return domain.Secret{}, errors.New("issue: unused")
}

func (noTokens) Verify(string, time.Time) (ports.AccessClaims, error) {
	return ports.AccessClaims{}, domain.ErrInvalidAccessToken
}

// fixture is an admin server over memory stores with one user and two sessions.
type fixture struct {
	url      string
	user     domain.User
	phone    domain.Session
	watch    domain.Session
	sessions *memory.Sessions

	// cipher and conns hold the secrets at rest the key commands manage.
	cipher *memory.Cipher
	conns  *memory.Connections
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	users, sessions := memory.NewUsers(), memory.NewSessions()
	now := time.Now()
	f := fixture{sessions: sessions}
	f.user = domain.NewUser(domain.AppleIdentity{Issuer: "https://appleid.apple.com", Subject: "001234.abc", Email: "a@privaterelay.appleid.com", IsPrivateEmail: true}, now)
	f.phone = domain.NewSession(f.user.ID, "install-1", domain.DevicePhone, "Ana's iPhone", domain.HashToken("r1"), now.Add(-time.Hour), domain.DefaultSessionLifetimes())
	f.watch = domain.NewSession(f.user.ID, "install-1", domain.DeviceWatch, "", domain.HashToken("r2"), now, domain.DefaultSessionLifetimes())
	for _, err := range []error{users.Create(t.Context(), f.user), sessions.Create(t.Context(), f.phone), sessions.Create(t.Context(), f.watch)} {
		if err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	svc := identity.New(identity.Deps{Users: users, Sessions: sessions, Nonces: memory.NewNonces(), Apple: noApple{}, Tokens: noTokens{}}, identity.Config{})
	secrets := memory.NewSealedSecrets()
	f.cipher, f.conns = memory.NewCipher(), memory.NewConnections(secrets)
	ks := keys.New(keys.Deps{Keys: f.cipher, Cipher: f.cipher, Secrets: secrets})
	route := connectapi.NewHandler(connectapi.Config{AdminTokens: []domain.Secret{domain.NewSecret(testToken)}},
		connectapi.NewAdminServer(svc, ks).WithSessionKeys(f.signingKeys(t, secrets)), slog.New(slog.NewTextHandler(io.Discard, nil)))
	mux := http.NewServeMux()
	route.Mount(mux)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// signingKeys is the rotation service over a real signer, with its material in secrets.
func (f fixture) signingKeys(t *testing.T, secrets *memory.SealedSecrets) *sessionkeys.Service {
	t.Helper()
	signer, err := sessiontoken.New(sessiontoken.Config{SigningKey: sessiontoken.GenerateKey(), Issuer: "betterkey", Audience: "betterkey-app"})
	if err != nil {
		t.Fatal(err)
	}
	return sessionkeys.New(sessionkeys.Deps{Store: memory.NewSigningKeys(secrets), Cipher: f.cipher, Ring: signer,
		Reload: 10 * time.Second, AccessTTL: 15 * time.Minute})
}

// ctl runs the CLI against f and returns stdout, stderr and the error.
func (f fixture) ctl(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	all := append([]string{"--addr", f.url, "--token-env", tokenEnv}, args...)
	err := run(t.Context(), all, &stdout, &stderr)
	if strings.Contains(stdout.String()+stderr.String(), testToken) || (err != nil && strings.Contains(err.Error(), testToken)) {
		t.Errorf("the admin token was printed")
	}
	return stdout.String(), stderr.String(), err
}

func TestRunCommands(t *testing.T) {
	t.Setenv(tokenEnv, testToken)
	for _, protocol := range []string{"connect", "grpc", "grpcweb"} {
		t.Run(protocol, func(t *testing.T) {
			f := newFixture(t)
			out, _, err := f.ctl(t, "--protocol", protocol, "user", "get", string(f.user.ID))
			if err != nil || !strings.Contains(out, "a@privaterelay.appleid.com") || !strings.Contains(out, "apple_subject     001234.abc") {
				t.Errorf("user get: err %v, out:\n%s", err, out)
			}
			out, _, err = f.ctl(t, "--protocol", protocol, "user", "get-by-apple", "https://appleid.apple.com", "001234.abc")
			if err != nil || !strings.Contains(out, string(f.user.ID)) {
				t.Errorf("user get-by-apple: err %v, out:\n%s", err, out)
			}
			out, _, err = f.ctl(t, "--protocol", protocol, "sessions", "list", string(f.user.ID))
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if err != nil || len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") ||
				!strings.HasPrefix(lines[1], string(f.watch.ID)) || !strings.Contains(lines[2], "Ana's iPhone") || !strings.Contains(lines[2], "active") {
				t.Errorf("sessions list: err %v, out:\n%s", err, out)
			}
			out, _, err = f.ctl(t, "--protocol", protocol, "sessions", "revoke", string(f.user.ID), string(f.phone.ID))
			if err != nil || strings.TrimSpace(out) != "revoked session "+string(f.phone.ID) {
				t.Errorf("sessions revoke: err %v, out %q", err, out)
			}
			out, _, err = f.ctl(t, "--protocol", protocol, "sessions", "revoke-all", string(f.user.ID))
			if err != nil || strings.TrimSpace(out) != "revoked 1 session(s) of user "+string(f.user.ID) {
				t.Errorf("sessions revoke-all: err %v, out %q", err, out)
			}
			for _, id := range []domain.SessionID{f.phone.ID, f.watch.ID} {
				if s, _ := f.sessions.Get(t.Context(), id); s.RevokedAt == nil || s.RevokeReason != domain.RevokeAdmin {
					t.Errorf("session %s not revoked by admin: %+v", id, s)
				}
			}
		})
	}
}

func TestRunJSON(t *testing.T) {
	t.Setenv(tokenEnv, testToken)
	f := newFixture(t)
	out, _, err := f.ctl(t, "-o", "json", "sessions", "list", string(f.user.ID))
	if err != nil {
		t.Fatalf("sessions list: %v", err)
	}
	var got struct {
		Sessions []struct {
			ID     string `json:"id"`
			Device string `json:"device"`
			State  string `json:"state"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if len(got.Sessions) != 2 || got.Sessions[0].ID != string(f.watch.ID) || got.Sessions[0].Device != "DEVICE_WATCH" || got.Sessions[1].State != "SESSION_STATE_ACTIVE" {
		t.Errorf("sessions list json = %+v", got)
	}
}

func TestRunErrors(t *testing.T) {
	t.Setenv(tokenEnv, testToken)
	t.Setenv("BETTERKEY_EMPTY_TOKEN", "")
	t.Setenv("BETTERKEY_WRONG_TOKEN", "wrong-token-of-another-length")
	f := newFixture(t)
	unknown := string(domain.NewUserID())
	tests := []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"unknown user", []string{"user", "get", unknown}, "user get: not_found: not found (code NOT_FOUND, request id ", false},
		{"invalid id", []string{"sessions", "list", "nope"}, "sessions list: invalid_argument: user_id: must be a lowercase UUID (code VALIDATION_FAILED", false},
		{"wrong token", []string{"--token-env", "BETTERKEY_WRONG_TOKEN", "user", "get", unknown}, "unauthenticated: admin token is missing or invalid (code INVALID_ADMIN_TOKEN", false},
		{"empty token", []string{"--token-env", "BETTERKEY_EMPTY_TOKEN", "user", "get", unknown}, "environment variable BETTERKEY_EMPTY_TOKEN is empty", false},
		{"no command", nil, `expected one of "user", "sessions", "grants", "keys", "signing-key"`, true},
		{"unknown command", []string{"vehicles", "list"}, "unexpected argument vehicles", true},
		{"wrong arity", []string{"sessions", "revoke", unknown}, `expected "<session-id>"`, true},
		{"bad output", []string{"-o", "yaml", "user", "get", unknown}, `--output must be one of "text","json" but got "yaml"`, true},
		{"bad protocol", []string{"--protocol", "soap", "user", "get", unknown}, `--protocol must be one of "connect","grpc","grpcweb" but got "soap"`, true},
		{"plaintext to remote", []string{"--addr", "http://admin.example.com", "user", "get", unknown}, "refusing to send the admin token over plain http", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := f.ctl(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if got := errors.Is(err, errUsage); got != tt.usage {
				t.Errorf("usage error = %v, want %v", got, tt.usage)
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"-h"}, &stdout, &stderr); err != nil {
		t.Fatalf("-h: %v", err)
	}
	if !strings.Contains(stdout.String(), "sessions revoke-all <user-id>") {
		t.Errorf("help lacks the commands:\n%s", stdout.String())
	}
}

// The emergency stop over the CLI: refused without the exact phrase (nothing revoked), then every
// session of every account revoked.
func TestRunRevokeEveryone(t *testing.T) {
	t.Setenv(tokenEnv, testToken)
	f := newFixture(t)
	_, _, err := f.ctl(t, "sessions", "revoke-everyone", "yes")
	if err == nil || !strings.Contains(err.Error(), "VALIDATION_FAILED") {
		t.Fatalf("without the phrase: %v", err)
	}
	if s, _ := f.sessions.Get(t.Context(), f.phone.ID); s.RevokedAt != nil {
		t.Fatal("a refused emergency stop revoked a session")
	}
	out, _, err := f.ctl(t, "sessions", "revoke-everyone", "revoke every session")
	if err != nil || strings.TrimSpace(out) != "revoked 2 session(s) of every account" {
		t.Fatalf("revoke-everyone: err %v, out %q", err, out)
	}
	for _, id := range []domain.SessionID{f.phone.ID, f.watch.ID} {
		if s, _ := f.sessions.Get(t.Context(), id); s.RevokedAt == nil || s.RevokeReason != domain.RevokeEmergency {
			t.Errorf("session %s: %+v", id, s)
		}
	}
	// The grant commands need the vehicle-link and account services, which this fixture lacks.
	if _, _, err := f.ctl(t, "grants", "revoke-smartcar", string(f.user.ID)); err == nil || !strings.Contains(err.Error(), "NOT_CONFIGURED") {
		t.Errorf("grants without the services: %v", err)
	}
}

// The session signing key over the CLI: nothing stored at first, then a rotation that stores the
// configured key (signing until the new one does) and the new key (pending); a bad overlap is
// refused by the server or, when it is not whole seconds, by the CLI.
func TestRunSigningKey(t *testing.T) {
	t.Setenv(tokenEnv, testToken)
	f := newFixture(t)
	out, _, err := f.ctl(t, "signing-key", "list")
	if err != nil || !strings.Contains(out, "no stored keys") {
		t.Fatalf("signing-key list: err %v, out %q", err, out)
	}
	if _, _, err := f.ctl(t, "signing-key", "rotate", "--overlap", "2h"); err == nil || !strings.Contains(err.Error(), "overlap_seconds: must be between 0 and 3600") {
		t.Fatalf("rotate with a 2h overlap: %v", err)
	}
	if _, _, err := f.ctl(t, "signing-key", "rotate", "--overlap", "1500ms"); !errors.Is(err, errUsage) {
		t.Fatalf("rotate with a fractional overlap: %v, want a usage error", err)
	}
	out, _, err = f.ctl(t, "signing-key", "rotate", "--overlap", "0s")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 4 || !strings.HasPrefix(lines[0], "rotated: key ") ||
		!strings.Contains(lines[2], " signing ") || !strings.Contains(lines[3], " pending ") {
		t.Fatalf("signing-key rotate: err %v, out:\n%s", err, out)
	}
	id := strings.Fields(lines[0])[2]
	out, _, err = f.ctl(t, "-o", "json", "signing-key", "list")
	var listed struct {
		Keys []struct {
			KeyID string `json:"key_id"`
			State string `json:"state"`
		} `json:"keys"`
	}
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Keys) != 2 || listed.Keys[1].KeyID != id {
		t.Fatalf("signing-key list -o json: err %v, out:\n%s", err, out)
	}
}
