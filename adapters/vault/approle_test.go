package vault_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/betterkey/backend/adapters/vault"
	"github.com/betterkey/backend/adapters/vault/vaulttest"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// servicePolicy is the policy the package doc recommends: no "create" anywhere.
func servicePolicy(key string) string {
	p := ""
	for _, path := range []string{"encrypt", "decrypt", "rewrap"} {
		p += fmt.Sprintf("path \"transit/%s/%s\" { capabilities = [\"update\"] }\n", path, key)
	}
	p += fmt.Sprintf("path \"transit/keys/%s\" { capabilities = [\"read\"] }\n", key)
	p += fmt.Sprintf("path \"transit/keys/%s/rotate\" { capabilities = [\"update\"] }\n", key)
	p += fmt.Sprintf("path \"transit/keys/%s/config\" { capabilities = [\"update\"] }\n", key)
	return p
}

// appRole enables AppRole with a role whose tokens live ttl and at most maxTTL, and returns its
// role id and a secret id.
func appRole(t *testing.T, admin *api.Client, key string, ttl, maxTTL time.Duration) (string, domain.Secret) {
	t.Helper()
	ctx := t.Context()
	if err := admin.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatalf("enable approle: %v", err)
	}
	if err := admin.Sys().PutPolicyWithContext(ctx, "betterkey", servicePolicy(key)); err != nil {
		t.Fatalf("put policy: %v", err)
	}
	if _, err := admin.Logical().WriteWithContext(ctx, "auth/approle/role/betterkey", map[string]any{
		"token_policies": "betterkey",
		"token_ttl":      ttl.String(),
		"token_max_ttl":  maxTTL.String(),
	}); err != nil {
		t.Fatalf("create role: %v", err)
	}
	rid, err := admin.Logical().ReadWithContext(ctx, "auth/approle/role/betterkey/role-id")
	if err != nil || rid == nil {
		t.Fatalf("read role id: %v", err)
	}
	sid, err := admin.Logical().WriteWithContext(ctx, "auth/approle/role/betterkey/secret-id", nil)
	if err != nil || sid == nil {
		t.Fatalf("create secret id: %v", err)
	}
	return rid.Data["role_id"].(string), domain.NewSecret(sid.Data["secret_id"].(string))
}

// TestVaultAppRole logs in with AppRole under the recommended policy, runs the key lifecycle,
// and keeps working past the token's max TTL, which only a re-login can achieve.
func TestVaultAppRole(t *testing.T) {
	addr, root, _ := vaulttest.Start(t)
	admin := vaulttest.Client(t, addr, root)
	const ttl, maxTTL = 4 * time.Second, 6 * time.Second
	roleID, secretID := appRole(t, admin, vaulttest.Key, ttl, maxTTL)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := vault.New(t.Context(), vault.Config{Addr: addr, RoleID: roleID, SecretID: secretID, Key: vaulttest.Key}, log)
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	if err := c.Canary(ctx); err != nil {
		t.Fatalf("Canary: %v", err)
	}

	b := domain.SecretBinding{Purpose: "smartcar.token_set", UserID: "u1", ConnectionID: "c1"}
	old, err := c.Seal(ctx, b, domain.NewSecret("old"))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if v, err := c.Rotate(ctx); err != nil || v != 2 {
		t.Fatalf("Rotate under the service policy: %d, %v", v, err)
	}
	res, err := c.Rewrap(ctx, []ports.RewrapItem{{Binding: b, Sealed: old}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("Rewrap under the service policy: %v / %v", err, res[0].Err)
	}
	if err := c.Retire(ctx, 2); err != nil {
		t.Fatalf("Retire under the service policy: %v", err)
	}

	// Outlive two max TTLs (two re-logins); every call must keep succeeding.
	deadline := time.Now().Add(2*maxTTL + time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for n := 0; time.Now().Before(deadline); n++ {
		<-tick.C
		s, err := c.Seal(ctx, b, domain.NewSecret("tick"))
		if err != nil {
			t.Fatalf("Seal %d after login: %v", n, err)
		}
		if _, err := c.Open(ctx, b, s); err != nil {
			t.Fatalf("Open %d after login: %v", n, err)
		}
	}

	closed := make(chan struct{})
	go func() { _ = c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop token renewal")
	}
}

// TestVaultAppRoleRevokedToken: an operator revokes the service's token between renewals; the
// next request finds it invalid, logs in again and succeeds, and parallel requests share one login.
func TestVaultAppRoleRevokedToken(t *testing.T) {
	addr, root, _ := vaulttest.Start(t)
	admin := vaulttest.Client(t, addr, root)
	roleID, secretID := appRole(t, admin, vaulttest.Key, time.Hour, time.Hour)
	c, err := vault.New(t.Context(), vault.Config{Addr: addr, RoleID: roleID, SecretID: secretID, Key: vaulttest.Key}, nil)
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	b := domain.SecretBinding{Purpose: "smartcar.token_set", UserID: "u1", ConnectionID: "c1"}
	sealed, err := c.Seal(ctx, b, domain.NewSecret("before"))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}

	for round := range 2 {
		// Logins are at least minRelogin (1 s) apart, so a storm of refusals cannot become a
		// storm of logins; let the previous login age past that.
		time.Sleep(1100 * time.Millisecond)
		if err := admin.Sys().RevokePrefixWithContext(ctx, "auth/approle/login"); err != nil {
			t.Fatalf("revoke approle tokens: %v", err)
		}
		logins := approleLogins(t, admin)
		const parallel = 20
		errs := make(chan error, parallel)
		for range parallel {
			go func() {
				_, err := c.Open(ctx, b, sealed)
				errs <- err
			}()
		}
		for range parallel {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: Open after the token was revoked: %v", round, err)
			}
		}
		if got := approleLogins(t, admin) - logins; got != 1 {
			t.Fatalf("round %d: %d approle logins after revocation, want exactly 1 shared by %d requests", round, got, parallel)
		}
	}
}

// approleLogins counts the live tokens issued by AppRole logins.
func approleLogins(t *testing.T, admin *api.Client) int {
	t.Helper()
	s, err := admin.Logical().ListWithContext(t.Context(), "auth/token/accessors")
	if err != nil || s == nil {
		t.Fatalf("list token accessors: %v", err)
	}
	keys, _ := s.Data["keys"].([]any)
	n := 0
	for _, k := range keys {
		info, err := admin.Auth().Token().LookupAccessorWithContext(t.Context(), k.(string))
		if err != nil || info == nil {
			continue // revoked meanwhile
		}
		if path, _ := info.Data["path"].(string); strings.HasPrefix(path, "auth/approle/login") {
			n++
		}
	}
	return n
}

// TestVaultAppRoleOtherKeyDenied: the policy confines the service to its key, so pointing it at
// another key fails at startup.
func TestVaultAppRoleOtherKeyDenied(t *testing.T) {
	addr, root, _ := vaulttest.Start(t)
	admin := vaulttest.Client(t, addr, root)
	other := vaulttest.RandomName("other")
	vaulttest.CreateKey(t, admin, other)
	roleID, secretID := appRole(t, admin, vaulttest.Key, time.Hour, time.Hour)
	_, err := vault.New(t.Context(), vault.Config{Addr: addr, RoleID: roleID, SecretID: secretID, Key: other}, nil)
	if !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("New on a key outside the policy: got %v, want a denied (unavailable) error", err)
	}
	_, err = vault.New(t.Context(), vault.Config{Addr: addr, RoleID: roleID, SecretID: domain.NewSecret("wrong"), Key: vaulttest.Key}, nil)
	if err == nil {
		t.Fatal("New with a wrong secret id succeeded")
	}
}
