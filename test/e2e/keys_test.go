package e2e

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"go.uber.org/fx"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/connectapi"
	"github.com/betterkey/backend/adapters/keyring"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/adapters/vault/vaulttest"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
	"github.com/betterkey/backend/cmd/betterkeyd/wiring"
	"github.com/betterkey/backend/domain"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
	"github.com/betterkey/backend/gen/betterkey/admin/v1/adminv1connect"
)

// withVault points the server at a Vault transit key instead of the local keyring.
func withVault(addr string, token domain.Secret, key string) option {
	return func(v map[string]string) {
		delete(v, "BETTERKEY_KEYRING_FILE")
		v["BETTERKEY_VAULT_ADDR"] = addr
		v["BETTERKEY_VAULT_TOKEN"] = token.Reveal()
		v["BETTERKEY_VAULT_TRANSIT_KEY"] = key
	}
}

// adminAuth sends the admin token on unary and streaming calls alike.
type adminAuth string

func (a adminAuth) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(a))
		return next(ctx, req)
	}
}

func (a adminAuth) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(a))
		return conn
	}
}

func (a adminAuth) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// keyAdmin is an admin client whose token reaches streaming calls too.
func (e *env) keyAdmin() adminv1connect.AdminServiceClient {
	return adminv1connect.NewAdminServiceClient(http.DefaultClient, e.servers.AdminURL(), connect.WithInterceptors(adminAuth(canaryAdminToken)))
}

// linkedOwner is a signed-in user with a linked Smartcar account of two vehicles.
type linkedOwner struct {
	access   string
	vehicles []string
}

// linkOwners signs n users in and links a Smartcar account to each, one sealed token set apiece.
func (e *env) linkOwners(n int) []linkedOwner {
	e.t.Helper()
	out := make([]linkedOwner, 0, n)
	for range n {
		sc := e.sc.CreateUser(smartcarsim.DefaultFleet()...)
		if err := e.sc.SetConsentUser(sc.ID); err != nil {
			e.t.Fatal(err)
		}
		s := e.signIn(applesim.NewSubject(), "install-1", "phone")
		if q, _ := e.connect(s.access, ""); q.Get("status") != "linked" {
			e.t.Fatalf("connect: %v", q)
		}
		o := linkedOwner{access: s.access}
		for _, v := range e.vehicles(s.access) {
			o.vehicles = append(o.vehicles, v["id"].(string))
		}
		out = append(out, o)
	}
	return out
}

// storedVersions reads every sealed secret's scheme and key version straight from the database.
func (e *env) storedVersions() map[string]int {
	e.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT ciphertext, key_version FROM sealed_secrets")
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var text string
		var v int
		if err := rows.Scan(&text, &v); err != nil {
			e.t.Fatal(err)
		}
		prefix, _, _ := strings.Cut(text, ":")
		if !strings.HasPrefix(text, prefix+":v"+strconv.Itoa(v)+":") {
			e.t.Fatalf("ciphertext of version %d is tagged %q", v, text[:min(len(text), 12)])
		}
		out[prefix+" v"+strconv.Itoa(v)]++
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// rotateRewrapRetire runs the rotation runbook through the admin API: report, rotate, rewrap
// (streamed), report, retire; every stored secret must end on version 2 of scheme.
func (e *env) rotateRewrapRetire(scheme string) {
	e.t.Helper()
	t, c := e.t, e.keyAdmin()
	n := int64(e.count("sealed_secrets"))
	if n == 0 {
		t.Fatal("nothing is sealed; the flow would prove nothing")
	}
	report := func() *adminv1.KeyReport {
		r, err := c.GetKeyReport(t.Context(), &adminv1.GetKeyReportRequest{})
		if err != nil {
			t.Fatalf("GetKeyReport: %v", err)
		}
		return r.GetReport()
	}
	wantReport := func(step string, got, want *adminv1.KeyReport) {
		if diff := cmp.Diff(got, want, protocmp.Transform()); diff != "" {
			t.Errorf("key report %s (-got +want):\n%s", step, diff)
		}
	}
	wantReport("before", report(), &adminv1.KeyReport{LatestVersion: 1, MinDecryptionVersion: 1,
		Versions: []*adminv1.KeyVersionUsage{{Version: 1, Secrets: n}}})

	rot, err := c.RotateKey(t.Context(), &adminv1.RotateKeyRequest{})
	if err != nil || rot.GetLatestVersion() != 2 {
		t.Fatalf("RotateKey = %v, %v; want version 2", rot, err)
	}

	stream, err := c.RewrapSecrets(t.Context(), &adminv1.RewrapSecretsRequest{BatchSize: 1})
	if err != nil {
		t.Fatalf("RewrapSecrets: %v", err)
	}
	var progress int64
	var summary *adminv1.RewrapSummary
	for stream.Receive() {
		if p := stream.Msg().GetProgress(); p != nil {
			progress++
			if p.GetDone() != progress || p.GetRemaining() != n-progress {
				t.Errorf("progress %d: %v", progress, p)
			}
		}
		summary = stream.Msg().GetSummary()
	}
	if err := stream.Close(); err != nil || stream.Err() != nil {
		t.Fatalf("RewrapSecrets stream: %v, %v", stream.Err(), err)
	}
	if progress != n || summary == nil {
		t.Fatalf("RewrapSecrets sent %d progress messages and summary %v; want %d and a summary", progress, summary, n)
	}
	rewrapped := &adminv1.KeyReport{LatestVersion: 2, MinDecryptionVersion: 1,
		Versions: []*adminv1.KeyVersionUsage{{Version: 1}, {Version: 2, Secrets: n}}}
	if diff := cmp.Diff(summary, &adminv1.RewrapSummary{
		Totals: &adminv1.RewrapProgress{TargetVersion: 2, Batches: int32(n), Done: n}, Report: rewrapped,
	}, protocmp.Transform()); diff != "" {
		t.Errorf("rewrap summary (-got +want):\n%s", diff)
	}
	wantReport("after rewrap", report(), rewrapped)

	ret, err := c.RetireKeyVersions(t.Context(), &adminv1.RetireKeyVersionsRequest{MinVersion: 2})
	if err != nil {
		t.Fatalf("RetireKeyVersions: %v", err)
	}
	wantReport("after retire", ret.GetReport(), &adminv1.KeyReport{LatestVersion: 2, MinDecryptionVersion: 2,
		Versions: []*adminv1.KeyVersionUsage{{Version: 2, Secrets: n}}})
	if diff := cmp.Diff(e.storedVersions(), map[string]int{scheme + " v2": int(n)}); diff != "" {
		t.Errorf("sealed_secrets rows by scheme and version (-got +want):\n%s", diff)
	}
}

// TestKeyRotationOnVault runs rotate, rewrap and retire against a real Vault, reads a vehicle
// whose token set now opens only under the new version, then stops Vault: reads answer 503 and
// nothing is stored or served in clear.
func TestKeyRotationOnVault(t *testing.T) {
	addr, root, stopVault := vaulttest.Start(t)
	e := startServer(t, withVault(addr, root, vaulttest.Key))
	owners := e.linkOwners(2)
	e.rotateRewrapRetire("vault")

	e.expect(e.do("GET", "/v1/vehicles/"+owners[0].vehicles[0]+"/status", nil, owners[0].access), http.StatusOK, "")
	e.assertNoTokenLeaks()

	stopVault()
	if userTokens() {
		e.expect(e.do("GET", "/v1/vehicles/"+owners[1].vehicles[0]+"/status", nil, owners[1].access), http.StatusServiceUnavailable, "UNAVAILABLE")
	} else { // v3 reads act as the application: no sealed token to open, so Vault is not needed
		e.expect(e.do("GET", "/v1/vehicles/"+owners[1].vehicles[0]+"/status", nil, owners[1].access), http.StatusOK, "")
	}
	e.expect(e.do("GET", "/readyz", nil, ""), http.StatusServiceUnavailable, "UNAVAILABLE")
	_, err := e.keyAdmin().RotateKey(t.Context(), &adminv1.RotateKeyRequest{})
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("RotateKey with Vault gone: %v, want unavailable", err)
	}
	// The list needs no decryption and keeps working.
	e.expect(e.do("GET", "/v1/vehicles", nil, owners[1].access), http.StatusOK, "")
	e.assertNoTokenLeaks()
	if strings.Contains(e.logs.String(), root.Reveal()) {
		t.Error("the Vault token appears in the logs")
	}
}

// TestKeyRotationOnKeyring runs the same flow on the local keyring, then proves the rotation and
// retirement were persisted: a second replica loading the keyring file reads the vehicle.
func TestKeyRotationOnKeyring(t *testing.T) {
	e := startServer(t)
	owners := e.linkOwners(2)
	e.rotateRewrapRetire(keyring.Scheme)
	e.expect(e.do("GET", "/v1/vehicles/"+owners[0].vehicles[0]+"/status", nil, owners[0].access), http.StatusOK, "")

	replica := e.another()
	replica.expect(replica.do("GET", "/v1/vehicles/"+owners[1].vehicles[0]+"/status", nil, owners[1].access), http.StatusOK, "")
	e.assertNoTokenLeaks()
}

// TestRetireRefusedWhileInUse: without a rewrap, retiring the old version is refused with a
// stable code and changes nothing.
func TestRetireRefusedWhileInUse(t *testing.T) {
	e := startServer(t)
	o := e.linkOwners(1)[0]
	c := e.keyAdmin()
	if _, err := c.RotateKey(t.Context(), &adminv1.RotateKeyRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.RetireKeyVersions(t.Context(), &adminv1.RetireKeyVersionsRequest{MinVersion: 2})
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || connectapi.ErrorCode(err) != "KEY_VERSION_IN_USE" {
		t.Fatalf("RetireKeyVersions while in use: %v (code %q)", err, connectapi.ErrorCode(err))
	}
	e.expect(e.do("GET", "/v1/vehicles/"+o.vehicles[0]+"/status", nil, o.access), http.StatusOK, "")
}

// startError builds and starts the server for cfg and returns why it refused; a server that
// starts fails the test.
func startError(t *testing.T, cfg config.Config) error {
	t.Helper()
	var servers *wiring.Servers
	app := fx.New(wiring.Options(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil))), fx.Populate(&servers))
	if err := app.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		return err
	}
	_ = app.Stop(ctx)
	t.Fatal("the server started")
	return nil
}

// TestServerRefusesMisspeltVaultKey: a key name that does not exist stops the server instead of
// minting a new key (fail closed), and no key is created.
func TestServerRefusesMisspeltVaultKey(t *testing.T) {
	addr, root, _ := vaulttest.Start(t)
	serverAddr := freeAddr(t)
	in := newInfra(t, "http://"+serverAddr+"/v1/smartcar/callback")
	typo := vaulttest.Key + "-typo"
	err := startError(t, serverConfig(t, in, serverAddr, withVault(addr, root, typo)))
	if err == nil || !strings.Contains(err.Error(), `transit key "`+typo+`" not found`) {
		t.Fatalf("start with a misspelt key: %v", err)
	}
	if strings.Contains(err.Error(), root.Reveal()) {
		t.Error("the start error carries the Vault token")
	}
	s, rerr := vaulttest.Client(t, addr, root).Logical().ReadWithContext(t.Context(), "transit/keys/"+typo)
	if rerr != nil || s != nil {
		t.Errorf("reading the misspelt key: %v, %v; want it not to exist", s, rerr)
	}
}

// TestServerRefusesSharedKeyring: a keyring file that group or others may read stops the server.
func TestServerRefusesSharedKeyring(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		t.Run(mode.String(), func(t *testing.T) {
			serverAddr := freeAddr(t)
			in := newInfra(t, "http://"+serverAddr+"/v1/smartcar/callback")
			in.keyring = filepath.Join(t.TempDir(), "keyring.json")
			if _, err := keyring.Open(in.keyring, true); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(in.keyring, mode); err != nil {
				t.Fatal(err)
			}
			err := startError(t, serverConfig(t, in, serverAddr))
			if err == nil || !strings.Contains(err.Error(), "group or others may access it") {
				t.Fatalf("start with a keyring of mode %v: %v", mode, err)
			}
		})
	}
}
