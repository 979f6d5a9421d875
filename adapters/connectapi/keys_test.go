package connectapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/betterkey/backend/adapters/connectapi"
	"github.com/betterkey/backend/app/identity"
	"github.com/betterkey/backend/app/keys"
	"github.com/betterkey/backend/domain"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
	"github.com/betterkey/backend/gen/betterkey/admin/v1/adminv1connect"
	"github.com/betterkey/backend/ports"
)

// seedSecrets stores n connections whose token sets the env's cipher seals under its latest
// version, and returns them.
func (e *env) seedSecrets(t *testing.T, n int) []domain.Connection {
	t.Helper()
	out := make([]domain.Connection, 0, n)
	now := time.Now()
	for i := range n {
		c := domain.Connection{
			ID: domain.NewConnectionID(), UserID: domain.NewUserID(), SmartcarUserID: "sc-user-" + strconv.Itoa(i),
			Status: domain.ConnectionActive, Scopes: domain.DefaultConnectScopes(),
			AccessExpiresAt: now.Add(time.Hour), RefreshExpiresAt: now.Add(24 * time.Hour), CreatedAt: now, UpdatedAt: now,
		}
		sealed, err := e.cipher.Seal(t.Context(), c.TokenBinding(), domain.NewSecret("token-set-"+strconv.Itoa(i)))
		if err != nil {
			t.Fatalf("seal: %v", err)
		}
		c.Tokens = sealed
		v := domain.Vehicle{ID: domain.NewVehicleID(), SmartcarID: "sc-vehicle-" + string(c.ID)}
		if _, err := e.conns.SaveGrant(t.Context(), c, []domain.Vehicle{v}); err != nil {
			t.Fatalf("save grant: %v", err)
		}
		out = append(out, c)
	}
	return out
}

// rewrap runs the streaming RPC to its end and returns every message and the stream's error.
func rewrap(ctx context.Context, c adminv1connect.AdminServiceClient, batch int32) ([]*adminv1.RewrapSecretsResponse, error) {
	stream, err := c.RewrapSecrets(ctx, &adminv1.RewrapSecretsRequest{BatchSize: batch})
	if err != nil {
		return nil, err
	}
	defer func() { _ = stream.Close() }()
	var got []*adminv1.RewrapSecretsResponse
	for stream.Receive() {
		got = append(got, stream.Msg())
	}
	return got, stream.Err()
}

func progressMsg(p *adminv1.RewrapProgress) *adminv1.RewrapSecretsResponse {
	return &adminv1.RewrapSecretsResponse{Event: &adminv1.RewrapSecretsResponse_Progress{Progress: p}}
}

func TestKeyRotationLifecycle(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.seedSecrets(t, 5)
			c := e.admin(p)

			rot, err := c.RotateKey(t.Context(), &adminv1.RotateKeyRequest{})
			if err != nil || rot.GetLatestVersion() != 2 {
				t.Fatalf("RotateKey = %v, %v; want version 2", rot, err)
			}
			rep, err := c.GetKeyReport(t.Context(), &adminv1.GetKeyReportRequest{})
			if err != nil {
				t.Fatalf("GetKeyReport: %v", err)
			}
			wantBefore := &adminv1.KeyReport{LatestVersion: 2, MinDecryptionVersion: 1, Versions: []*adminv1.KeyVersionUsage{
				{Version: 1, Secrets: 5}, {Version: 2},
			}}
			if diff := cmp.Diff(rep.GetReport(), wantBefore, protocmp.Transform()); diff != "" {
				t.Errorf("GetKeyReport before rewrap (-got +want):\n%s", diff)
			}

			got, err := rewrap(t.Context(), c, 2)
			if err != nil {
				t.Fatalf("RewrapSecrets: %v", err)
			}
			after := &adminv1.KeyReport{LatestVersion: 2, MinDecryptionVersion: 1, Versions: []*adminv1.KeyVersionUsage{
				{Version: 1}, {Version: 2, Secrets: 5},
			}}
			want := []*adminv1.RewrapSecretsResponse{
				progressMsg(&adminv1.RewrapProgress{TargetVersion: 2, Batches: 1, Done: 2, Remaining: 3}),
				progressMsg(&adminv1.RewrapProgress{TargetVersion: 2, Batches: 2, Done: 4, Remaining: 1}),
				progressMsg(&adminv1.RewrapProgress{TargetVersion: 2, Batches: 3, Done: 5}),
				{Event: &adminv1.RewrapSecretsResponse_Summary{Summary: &adminv1.RewrapSummary{
					Totals: &adminv1.RewrapProgress{TargetVersion: 2, Batches: 3, Done: 5}, Report: after,
				}}},
			}
			if diff := cmp.Diff(got, want, protocmp.Transform()); diff != "" {
				t.Errorf("RewrapSecrets stream (-got +want):\n%s", diff)
			}

			ret, err := c.RetireKeyVersions(t.Context(), &adminv1.RetireKeyVersionsRequest{MinVersion: 2})
			if err != nil {
				t.Fatalf("RetireKeyVersions: %v", err)
			}
			retired := &adminv1.KeyReport{LatestVersion: 2, MinDecryptionVersion: 2, Versions: []*adminv1.KeyVersionUsage{{Version: 2, Secrets: 5}}}
			if diff := cmp.Diff(ret.GetReport(), retired, protocmp.Transform()); diff != "" {
				t.Errorf("RetireKeyVersions (-got +want):\n%s", diff)
			}
		})
	}
}

func TestKeyErrors(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.seedSecrets(t, 1)
			c := e.admin(p)
			if _, err := c.RotateKey(t.Context(), &adminv1.RotateKeyRequest{}); err != nil {
				t.Fatal(err)
			}
			_, err := c.RetireKeyVersions(t.Context(), &adminv1.RetireKeyVersionsRequest{MinVersion: 2})
			wantError(t, err, connect.CodeFailedPrecondition, keys.ErrKeyVersionInUse.Msg, "KEY_VERSION_IN_USE")
			if kv, _ := e.cipher.Versions(t.Context()); kv.MinDecryption != 1 {
				t.Errorf("a refused retirement moved the minimum decryption version to %d", kv.MinDecryption)
			}
			_, err = c.RetireKeyVersions(t.Context(), &adminv1.RetireKeyVersionsRequest{MinVersion: 3})
			wantError(t, err, connect.CodeInvalidArgument, "min_version: must be between 1 and the latest key version", "VALIDATION_FAILED")
			_, err = rewrap(t.Context(), c, keys.MaxBatchSize+1)
			wantError(t, err, connect.CodeInvalidArgument, "batch_size: must be between 1 and 1000, or 0 for the default", "VALIDATION_FAILED")

			_, err = rewrap(t.Context(), e.client(t, p, "Bearer wrong-token-value"), 0)
			wantError(t, err, connect.CodeUnauthenticated, unauthMsg, "INVALID_ADMIN_TOKEN")
			if counts, _ := e.secrets.KeyVersionCounts(t.Context()); counts[1] != 1 {
				t.Errorf("a refused rewrap changed the secrets: %v", counts)
			}
		})
	}
}

// flakyCipher is a backend that takes delay over each rewrap batch and becomes unreachable
// after okBatches of them.
type flakyCipher struct {
	ports.TokenCipher
	okBatches int64
	delay     time.Duration
	calls     atomic.Int64
}

func (f *flakyCipher) Rewrap(ctx context.Context, items []ports.RewrapItem) ([]ports.RewrapResult, error) {
	if f.calls.Add(1) > f.okBatches {
		return nil, fmt.Errorf("rewrap: dial tcp 10.0.0.9:8200: %s: %w", internalCanary, domain.ErrUnavailable)
	}
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return f.TokenCipher.Rewrap(ctx, items)
}

// stallingCipher serves one rewrap batch, then holds every further one until its context ends.
type stallingCipher struct {
	ports.TokenCipher
	calls atomic.Int64
}

func (s *stallingCipher) Rewrap(ctx context.Context, items []ports.RewrapItem) ([]ports.RewrapResult, error) {
	if s.calls.Add(1) == 1 {
		return s.TokenCipher.Rewrap(ctx, items)
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// keysServer is a second admin server on an env's stores; ended receives one value each time a
// call has finished on the server, so a test can wait for a job to end without sleeping.
type keysServer struct {
	*env
	ended chan struct{}
}

// serveKeys starts a keysServer whose rewrap goes through c, with the given server timeouts.
func serveKeys(t *testing.T, e *env, c ports.TokenCipher, timeout time.Duration) keysServer {
	t.Helper()
	svc := identity.New(identity.Deps{Users: e.users, Sessions: e.sessions, Apple: noApple{}, Tokens: noTokens{}}, identity.Config{})
	ks := keys.New(keys.Deps{Keys: e.cipher, Cipher: c, Secrets: e.secrets})
	route := connectapi.NewHandler(connectapi.Config{AdminTokens: []domain.Secret{domain.NewSecret(adminToken)}},
		connectapi.NewAdminServer(svc, ks), slog.New(slog.NewJSONHandler(e.logs, nil)))
	ended := make(chan struct{}, 16)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route.Handler.ServeHTTP(w, r)
		ended <- struct{}{}
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = timeout, timeout
	srv.Start()
	t.Cleanup(srv.Close)
	other := *e
	other.url = srv.URL
	return keysServer{env: &other, ended: ended}
}

// TestRewrapOutlastsServerTimeouts runs a stream three times longer than the server's read and
// write timeouts, which cut unary calls, to its end.
func TestRewrapOutlastsServerTimeouts(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.seedSecrets(t, 6)
			if _, err := e.cipher.Rotate(t.Context()); err != nil {
				t.Fatal(err)
			}
			const timeout = 200 * time.Millisecond
			slow := serveKeys(t, e, &flakyCipher{TokenCipher: e.cipher, okBatches: 100, delay: timeout}, timeout)
			got, err := rewrap(t.Context(), slow.client(t, p, "Bearer "+adminToken), 2)
			if err != nil {
				t.Fatalf("RewrapSecrets: %v", err)
			}
			if n := len(got); n != 4 || got[n-1].GetSummary().GetTotals().GetDone() != 6 {
				t.Errorf("RewrapSecrets sent %d messages, last %v; want 3 progress and a summary of 6 done", n, got[n-1])
			}
		})
	}
}

// TestRewrapReportsBackendLoss: the stream carries the progress made, then UNAVAILABLE; the
// upstream's text stays in the server log; a new call resumes.
func TestRewrapReportsBackendLoss(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.seedSecrets(t, 5)
			if _, err := e.cipher.Rotate(t.Context()); err != nil {
				t.Fatal(err)
			}
			flaky := serveKeys(t, e, &flakyCipher{TokenCipher: e.cipher, okBatches: 1}, 0)
			got, err := rewrap(t.Context(), flaky.client(t, p, "Bearer "+adminToken), 2)
			wantError(t, err, connect.CodeUnavailable, domain.ErrUnavailable.Msg, "UNAVAILABLE")
			if strings.Contains(err.Error(), "canary") {
				t.Errorf("the client saw the upstream's text: %v", err)
			}
			want := []*adminv1.RewrapSecretsResponse{progressMsg(&adminv1.RewrapProgress{TargetVersion: 2, Batches: 1, Done: 2, Remaining: 3})}
			if diff := cmp.Diff(got, want, protocmp.Transform()); diff != "" {
				t.Errorf("stream before the failure (-got +want):\n%s", diff)
			}

			resumed, err := rewrap(t.Context(), e.admin(p), 2)
			if err != nil {
				t.Fatalf("resumed RewrapSecrets: %v", err)
			}
			if s := resumed[len(resumed)-1].GetSummary(); s.GetTotals().GetDone() != 3 || s.GetTotals().GetRemaining() != 0 {
				t.Errorf("resumed summary = %v, want the 3 left done", s)
			}
		})
	}
}

// TestRewrapStopsWhenTheClientLeaves: a client that goes away cancels the job.
func TestRewrapStopsWhenTheClientLeaves(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.seedSecrets(t, 3)
			if _, err := e.cipher.Rotate(t.Context()); err != nil {
				t.Fatal(err)
			}
			stalling := &stallingCipher{TokenCipher: e.cipher}
			srv := serveKeys(t, e, stalling, 0)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			stream, err := srv.client(t, p, "Bearer "+adminToken).RewrapSecrets(ctx, &adminv1.RewrapSecretsRequest{BatchSize: 1})
			if err != nil {
				t.Fatal(err)
			}
			if !stream.Receive() {
				t.Fatalf("no first progress: %v", stream.Err())
			}
			cancel()
			_ = stream.Close()
			select {
			case <-srv.ended:
			case <-time.After(10 * time.Second):
				t.Fatal("the job went on after the client left")
			}
			if n := stalling.calls.Load(); n > 2 {
				t.Errorf("the cipher saw %d batches, want at most 2 (one done, one cancelled)", n)
			}
			if counts, _ := e.secrets.KeyVersionCounts(t.Context()); counts[1] != 2 {
				t.Errorf("after the client left: %v, want 2 secrets left on version 1", counts)
			}
		})
	}
}
