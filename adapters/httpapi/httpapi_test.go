package httpapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/adapters/sessiontoken"
	"github.com/betterkey/backend/app/identity"
	"github.com/betterkey/backend/domain"
)

func TestEveryKindHasAStatus(t *testing.T) {
	for _, k := range domain.Kinds() {
		if _, ok := statusByKind[k]; !ok {
			t.Errorf("kind %v has no HTTP status", k)
		}
	}
}

func TestInternalErrorsDoNotLeak(t *testing.T) {
	p := problemFor(errors.New("pq: password authentication failed for user secret_user"), "rid")
	if p.Status != 500 || p.Code != "INTERNAL" || strings.Contains(p.Detail, "secret_user") {
		t.Fatalf("got %+v", p)
	}
	p = problemFor(context.DeadlineExceeded, "rid")
	if p.Status != 503 {
		t.Fatalf("deadline: got %+v", p)
	}
}

func newTestServer(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	signer, err := sessiontoken.New(sessiontoken.Config{SigningKey: sessiontoken.GenerateKey(), Issuer: "i", Audience: "a"})
	if err != nil {
		t.Fatal(err)
	}
	id := identity.New(identity.Deps{Users: memory.NewUsers(), Sessions: memory.NewSessions(), Nonces: memory.NewNonces(), Tokens: signer}, identity.Config{})
	h, err := New(Deps{Identity: id, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry()}, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPSRequiredOutsideDevelopment(t *testing.T) {
	srv := newTestServer(t, Options{RequireHTTPS: true, TrustForwardedProto: true})
	res, err := http.Post(srv.URL+"/v1/auth/nonce", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("plain HTTP: got %d", res.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/auth/nonce", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || !strings.Contains(res.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Fatalf("behind TLS proxy: got %d, HSTS %q", res.StatusCode, res.Header.Get("Strict-Transport-Security"))
	}
}

func TestForwardedProtoIgnoredUnlessTrusted(t *testing.T) {
	srv := newTestServer(t, Options{RequireHTTPS: true})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/auth/nonce", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("got %d", res.StatusCode)
	}
}

func TestBodyLimitAndUnknownRoutes(t *testing.T) {
	srv := newTestServer(t, Options{MaxBodyBytes: 1024})
	res, err := http.Post(srv.URL+"/v1/auth/refresh", "application/json", strings.NewReader(`{"refresh_token":"`+strings.Repeat("a", 4096)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: got %d", res.StatusCode)
	}
	res, err = http.Get(srv.URL + "/v1/nope")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound || res.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(body), `"request_id"`) {
		t.Fatalf("unknown route: %d %s", res.StatusCode, body)
	}
}

func TestRequestIDAdoptedOnlyWhenSane(t *testing.T) {
	srv := newTestServer(t, Options{})
	for in, keep := range map[string]bool{"abc-123": true, "bad id with spaces": false, strings.Repeat("x", 100): false} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/healthz", nil)
		req.Header.Set("X-Request-Id", in)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("X-Request-Id"); (got == in) != keep || got == "" {
			t.Errorf("in %q: got %q", in, got)
		}
	}
}
