package wiring

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/betterkey/backend/cmd/betterkeyd/config"
	"github.com/betterkey/backend/domain"
)

// Outside development the admin listener refuses plain HTTP as the public one does: admin tokens
// must not cross a network in clear.
func TestAdminListenerNeedsHTTPSOutsideDevelopment(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for _, tc := range []struct {
		name    string
		env     config.Env
		trust   bool
		tls     bool
		proto   string
		want    int
		wantSTS bool
	}{
		{"development, plain", config.Development, false, false, "", http.StatusNoContent, false},
		{"production, plain", config.Production, false, false, "", http.StatusForbidden, false},
		{"production, forwarded but not trusted", config.Production, false, false, "https", http.StatusForbidden, false},
		{"production, trusted proxy says http", config.Production, true, false, "http", http.StatusForbidden, false},
		{"production, trusted proxy says https", config.Production, true, false, "https", http.StatusNoContent, true},
		{"production, TLS", config.Production, false, true, "", http.StatusNoContent, true},
		{"staging, plain", config.Staging, false, false, "", http.StatusForbidden, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := httpsOnly(config.Config{Env: tc.env, TrustForwardedProto: tc.trust}, ok)
			req := httptest.NewRequest(http.MethodPost, "/betterkey.admin.v1.AdminService/GetUser", nil)
			if tc.tls {
				req.TLS = &tls.ConnectionState{}
			}
			if tc.proto != "" {
				req.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want || (rec.Header().Get("Strict-Transport-Security") != "") != tc.wantSTS {
				t.Fatalf("status %d, HSTS %q; want %d, HSTS %v", rec.Code, rec.Header().Get("Strict-Transport-Security"), tc.want, tc.wantSTS)
			}
		})
	}
}

// Sharing the public listener, the operators' endpoints keep the HTTPS rule: the REST router
// applies it to its own routes only, so the Connect API and /metrics carry their own.
func TestSharedListenerKeepsTheHTTPSRuleForOperators(t *testing.T) {
	const token = "operator-token-0123456789abcdef0123456789"
	cfg := config.Config{Env: config.Production, HTTPAddr: "127.0.0.1:9", AdminAddr: "127.0.0.1:9",
		AdminTokens: []domain.Secret{domain.NewSecret(token)}}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	ls := listeners(cfg, prometheus.NewRegistry(), ok, Admin{Path: "/betterkey.admin.v1.AdminService/", Handler: ok}, &Simulators{}, &Servers{})
	if len(ls) != 1 {
		t.Fatalf("%d listeners for one address, want 1", len(ls))
	}
	for _, tc := range []struct {
		method, path string
		tls          bool
		want         int
	}{
		{http.MethodPost, "/betterkey.admin.v1.AdminService/GetUser", false, http.StatusForbidden},
		{http.MethodPost, "/betterkey.admin.v1.AdminService/GetUser", true, http.StatusNoContent},
		{http.MethodGet, "/metrics", false, http.StatusForbidden},
		{http.MethodGet, "/metrics", true, http.StatusOK},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if tc.tls {
			req.TLS = &tls.ConnectionState{}
		}
		rec := httptest.NewRecorder()
		ls[0].h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %s (TLS %v): %d, want %d", tc.method, tc.path, tc.tls, rec.Code, tc.want)
		}
	}
}
