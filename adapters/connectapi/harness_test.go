package connectapi_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/betterkey/backend/adapters/connectapi"
	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/app/identity"
	"github.com/betterkey/backend/app/keys"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/gen/betterkey/admin/v1/adminv1connect"
	"github.com/betterkey/backend/ports"
)

// Admin tokens of different lengths: the second proves rotation works and that length does not
// matter to the comparison.
const (
	adminToken     = "adm-0123456789abcdef0123456789abcdef"
	rotatedToken   = "adm-rotated-fedcba9876543210fedcba9876543210-long"
	appleIssuer    = "https://appleid.apple.com"
	internalCanary = "pq: password authentication failed for canary-db-secret"
)

// noApple and noTokens satisfy identity.Deps; the admin API never signs anybody in.
type noApple struct{}

func (noApple) Verify(context.Context, string) (domain.AppleIdentity, error) {
	return domain.AppleIdentity{}, errors.New("verify: not used by the admin api")
}

type noTokens struct{}

func (noTokens) Issue(ports.AccessClaims) (domain.Secret, error) {
	return domain.Secret{}, errors.New("issue: not used by the admin api")
}

func (noTokens) Verify(string, time.Time) (ports.AccessClaims, error) {
	return ports.AccessClaims{}, domain.ErrInvalidAccessToken
}

// logBuffer is a goroutine-safe sink for the server's JSON log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one admin server over the in-memory stores, served over HTTP/1.1 and h2c.
type env struct {
	users    ports.UserStore
	sessions *memory.Sessions
	url      string
	logs     *logBuffer
	admins   map[string]adminv1connect.AdminServiceClient // per protocol, with adminToken

	// cipher, secrets and conns back the key-management calls; conns writes its token sets
	// into secrets, as in the database.
	cipher  *memory.Cipher
	secrets *memory.SealedSecrets
	conns   *memory.Connections
}

// newEnv starts the admin API over users (nil: a fresh memory store).
func newEnv(t *testing.T, users ports.UserStore) *env {
	t.Helper()
	if users == nil {
		users = memory.NewUsers()
	}
	e := &env{users: users, sessions: memory.NewSessions(), logs: &logBuffer{},
		cipher: memory.NewCipher(), secrets: memory.NewSealedSecrets()}
	e.conns = memory.NewConnections(e.secrets)
	svc := identity.New(identity.Deps{
		Users: e.users, Sessions: e.sessions, Nonces: memory.NewNonces(), Apple: noApple{}, Tokens: noTokens{},
	}, identity.Config{})
	ks := keys.New(keys.Deps{Keys: e.cipher, Cipher: e.cipher, Secrets: e.secrets})
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := connectapi.Config{AdminTokens: []domain.Secret{domain.NewSecret(adminToken), domain.NewSecret(rotatedToken)}}
	route := connectapi.NewHandler(cfg, connectapi.NewAdminServer(svc, ks), log)

	mux := http.NewServeMux()
	route.Mount(mux)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	e.url = srv.URL
	e.admins = map[string]adminv1connect.AdminServiceClient{}
	for _, p := range protocols {
		e.admins[p.name] = e.client(t, p, "Bearer "+adminToken)
	}
	return e
}

// admin returns the client over p that carries the first admin token.
func (e *env) admin(p protocol) adminv1connect.AdminServiceClient { return e.admins[p.name] }

// protocols are the three wire protocols a Connect handler serves; every behaviour is checked
// through each, since gRPC carries errors in trailers and Connect in the body.
type protocol struct {
	name string
	opts []connect.ClientOption
	h2c  bool
}

var protocols = []protocol{
	{name: "connect"},
	{name: "grpc", opts: []connect.ClientOption{connect.WithGRPC()}, h2c: true},
	{name: "grpcweb", opts: []connect.ClientOption{connect.WithGRPCWeb()}},
}

// client returns an AdminService client over p; each authorization entry becomes one
// Authorization header on every call.
func (e *env) client(t *testing.T, p protocol, authorization ...string) adminv1connect.AdminServiceClient {
	t.Helper()
	transport := &http.Transport{}
	if p.h2c {
		transport.Protocols = new(http.Protocols)
		transport.Protocols.SetUnencryptedHTTP2(true)
	}
	t.Cleanup(transport.CloseIdleConnections)
	opts := append([]connect.ClientOption{connect.WithInterceptors(authHeaders(authorization))}, p.opts...)
	return adminv1connect.NewAdminServiceClient(&http.Client{Transport: transport, Timeout: 10 * time.Second}, e.url, opts...)
}

// authHeaders adds each entry as one Authorization header to every call, unary or streaming.
type authHeaders []string

func (a authHeaders) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		for _, v := range a {
			req.Header().Add("Authorization", v)
		}
		return next(ctx, req)
	}
}

func (a authHeaders) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		for _, v := range a {
			conn.RequestHeader().Add("Authorization", v)
		}
		return conn
	}
}

func (a authHeaders) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// seedUser creates an account directly in the store.
func (e *env) seedUser(t *testing.T, subject, email string, now time.Time) domain.User {
	t.Helper()
	u := domain.NewUser(domain.AppleIdentity{
		Issuer: appleIssuer, Subject: subject, Email: email, EmailVerified: true, IsPrivateEmail: true,
	}, now)
	if err := e.users.Create(t.Context(), u); err != nil {
		t.Fatalf("create user: %v", err)
	}
	return u
}

// seedSession creates a session directly in the store.
func (e *env) seedSession(t *testing.T, user domain.UserID, install string, device domain.Device, now time.Time) domain.Session {
	t.Helper()
	s := domain.NewSession(user, install, device, "Test "+string(device), domain.HashToken(install+now.String()), now,
		domain.DefaultSessionLifetimes())
	if err := e.sessions.Create(t.Context(), s); err != nil {
		t.Fatalf("create session: %v", err)
	}
	return s
}

// wantError checks a failed call's code, client-visible message and stable code.
func wantError(t *testing.T, err error, code connect.Code, msg, stable string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %v", code)
	}
	ce, ok := errors.AsType[*connect.Error](err)
	if !ok {
		t.Fatalf("err = %T %v, want *connect.Error", err, err)
	}
	if ce.Code() != code || ce.Message() != msg || connectapi.ErrorCode(err) != stable {
		t.Errorf("got (%v, %q, %q), want (%v, %q, %q)", ce.Code(), ce.Message(), connectapi.ErrorCode(err), code, msg, stable)
	}
}
