// Package vaulttest runs a real Vault dev server on loopback for the Vault adapter's tests, so
// they exercise transit itself rather than a fake. The server binary is built once by
// test/vaultserver/build.sh (Vault v1.21.0 from the Go module proxy).
package vaulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/betterkey/backend/domain"
)

// BinEnv names the environment variable that overrides where the vault binary is.
const BinEnv = "BETTERKEY_VAULT_BIN"

// Key is the transit key Start creates: aes256-gcm96, derived, as production expects.
const Key = "betterkey-test"

// startTimeout bounds how long the dev server may take to answer its health check.
const startTimeout = 30 * time.Second

// Start runs "vault server -dev" on a free loopback port with a random root token, enables
// transit at "transit", sets disable_upsert (so a misspelt key name fails instead of creating a
// key) and creates Key. The server is stopped by stop (idempotent, for tests that need Vault to
// go away) or at the end of the test. A missing binary fails the test with the build command.
func Start(t testing.TB) (addr string, rootToken domain.Secret, stop func()) {
	t.Helper()
	bin := binary(t)
	token := "root-" + randomHex(16)
	var lastErr error
	for range 3 { // a port picked free may be taken by the time vault binds it
		addr, stop, err := run(t, bin, token)
		if err == nil {
			c := Client(t, addr, domain.NewSecret(token))
			setUp(t, c)
			return addr, domain.NewSecret(token), stop
		}
		lastErr = err
	}
	t.Fatalf("start vault dev server: %v", lastErr)
	return "", domain.Secret{}, nil
}

// binary finds the vault binary: $BETTERKEY_VAULT_BIN, else test/vaultserver/bin/vault under the
// module root.
func binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(BinEnv); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("find vault binary: %v", err)
	}
	for {
		if gm, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.HasPrefix(gm, []byte("module github.com/betterkey/backend\n")) {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("find vault binary: no github.com/betterkey/backend go.mod above the test directory; set %s", BinEnv)
		}
		dir = parent
	}
	bin := filepath.Join(dir, "test", "vaultserver", "bin", "vault")
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		t.Fatalf("vault binary %s is missing: build it once with test/vaultserver/build.sh "+
			"(or point %s at a vault v1.21 binary)", bin, BinEnv)
	}
	return bin
}

// run starts one dev server and waits until it is healthy; on failure the process is gone.
func run(t testing.TB, bin, token string) (string, func(), error) {
	port, err := freePortPair()
	if err != nil {
		return "", nil, err
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id="+token,
		"-dev-listen-address="+listen, "-dev-no-store-token", "-log-level=warn")
	cmd.Env = append(os.Environ(), "VAULT_DEV_ROOT_TOKEN_ID=", "HOME="+t.TempDir())
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	}
	addr := "http://" + listen
	if err := waitHealthy(addr, exited); err != nil {
		stop()
		return "", nil, fmt.Errorf("%w; server output:\n%s", err, strings.ReplaceAll(out.String(), token, "[REDACTED]"))
	}
	t.Cleanup(stop)
	return addr, stop, nil
}

// waitHealthy polls /v1/sys/health until the dev server is initialised and unsealed.
func waitHealthy(addr string, exited <-chan error) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("vault exited during start: %v", err)
		case <-tick.C:
		}
		resp, err := client.Get(addr + "/v1/sys/health")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("vault did not become healthy in time")
}

// freePortPair returns a loopback port p with p+1 also free: the dev server binds its cluster
// listener on the next port.
func freePortPair() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		_ = l.Close()
		if err == nil {
			_ = l2.Close()
			return port, nil
		}
	}
	return 0, errors.New("find free port: no free pair of ports")
}

// Client returns an api client for addr authenticated with token, for test setup.
func Client(t testing.TB, addr string, token domain.Secret) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.Timeout = 10 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("vault client: %v", err)
	}
	c.SetToken(token.Reveal())
	return c
}

// setUp enables transit, turns off upserts and creates Key.
func setUp(t testing.TB, c *api.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Sys().MountWithContext(ctx, "transit", &api.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("enable transit: %v", err)
	}
	if _, err := c.Logical().WriteWithContext(ctx, "transit/config/keys", map[string]any{"disable_upsert": true}); err != nil {
		t.Fatalf("set transit disable_upsert: %v", err)
	}
	CreateKey(t, c, Key)
}

// CreateKey creates a transit key shaped like production's: aes256-gcm96, derived.
func CreateKey(t testing.TB, c *api.Client, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Logical().WriteWithContext(ctx, "transit/keys/"+name, map[string]any{"type": "aes256-gcm96", "derived": true})
	if err != nil {
		t.Fatalf("create transit key %s: %v", name, err)
	}
}

// RandomName returns a fresh key name, so each test gets a key at version 1.
func RandomName(prefix string) string { return prefix + "-" + randomHex(6) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// syncBuffer collects the server's output from two goroutines (stdout and stderr copies).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
