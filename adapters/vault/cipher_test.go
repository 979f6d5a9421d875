package vault_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/vault"
	"github.com/betterkey/backend/adapters/vault/vaulttest"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

// newCipher builds a Cipher closed at the end of the test.
func newCipher(t testing.TB, cfg vault.Config) *vault.Cipher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := vault.New(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestVaultContract(t *testing.T) {
	addr, root, _ := vaulttest.Start(t)
	admin := vaulttest.Client(t, addr, root)
	contract.TokenCipher(t, func(t *testing.T) (ports.TokenCipher, ports.KeyManager) {
		key := vaulttest.RandomName("contract")
		vaulttest.CreateKey(t, admin, key)
		c := newCipher(t, vault.Config{Addr: addr, Token: root, Key: key})
		return c, c
	})
}

func TestVaultCanary(t *testing.T) {
	addr, root, _ := vaulttest.Start(t)
	c := newCipher(t, vault.Config{Addr: addr, Token: root, Key: vaulttest.Key})
	if err := c.Canary(t.Context()); err != nil {
		t.Fatalf("Canary: %v", err)
	}
}

// TestVaultStoppedMidTest: once Vault is gone every call fails as unavailable, promptly, without
// a panic and without the plaintext or token in the error.
func TestVaultStoppedMidTest(t *testing.T) {
	addr, root, stop := vaulttest.Start(t)
	c := newCipher(t, vault.Config{Addr: addr, Token: root, Key: vaulttest.Key, Timeout: 3 * time.Second})
	ctx := t.Context()
	b := domain.SecretBinding{Purpose: "smartcar.token_set", UserID: "u1", ConnectionID: "c1"}
	const plaintext = "CANARY-PLAINTEXT-5d1e"
	sealed, err := c.Seal(ctx, b, domain.NewSecret(plaintext))
	if err != nil {
		t.Fatalf("Seal before stop: %v", err)
	}

	stop()

	_, sealErr := c.Seal(ctx, b, domain.NewSecret(plaintext))
	_, openErr := c.Open(ctx, b, sealed)
	_, rewrapErr := c.Rewrap(ctx, []ports.RewrapItem{{Binding: b, Sealed: sealed}})
	_, versionsErr := c.Versions(ctx)
	_, rotateErr := c.Rotate(ctx)
	for name, err := range map[string]error{
		"Seal": sealErr, "Open": openErr, "Rewrap": rewrapErr, "Versions": versionsErr, "Rotate": rotateErr,
	} {
		if !errors.Is(err, domain.ErrUnavailable) {
			t.Errorf("%s with Vault stopped: got %v, want domain.ErrUnavailable", name, err)
			continue
		}
		if domain.KindOf(err) != domain.KindUnavailable {
			t.Errorf("%s with Vault stopped: kind %v, want unavailable", name, domain.KindOf(err))
		}
		for _, secret := range []string{plaintext, root.Reveal(), sealed.Ciphertext()} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s error leaks a secret: %v", name, err)
			}
		}
	}
	if err := c.Canary(ctx); !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("Canary with Vault stopped: got %v, want domain.ErrUnavailable", err)
	}
}

// TestVaultNewFailsClosed: New refuses every setup that would not protect tokens as promised.
func TestVaultNewFailsClosed(t *testing.T) {
	addr, root, _ := vaulttest.Start(t)
	admin := vaulttest.Client(t, addr, root)
	ctx := t.Context()
	mkKey := func(params map[string]any) string {
		name := vaulttest.RandomName("shape")
		if _, err := admin.Logical().WriteWithContext(ctx, "transit/keys/"+name, params); err != nil {
			t.Fatalf("create key: %v", err)
		}
		return name
	}
	notDerived := mkKey(map[string]any{"type": "aes256-gcm96"})
	exportable := mkKey(map[string]any{"type": "aes256-gcm96", "derived": true, "exportable": true})
	chacha := mkKey(map[string]any{"type": "chacha20-poly1305", "derived": true})
	deletable := mkKey(map[string]any{"type": "aes256-gcm96", "derived": true})
	if _, err := admin.Logical().WriteWithContext(ctx, "transit/keys/"+deletable+"/config",
		map[string]any{"deletion_allowed": true}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name        string
		cfg         vault.Config
		unavailable bool
	}{
		{name: "misspelt key", cfg: vault.Config{Addr: addr, Token: root, Key: vaulttest.Key + "x"}},
		{name: "key not derived", cfg: vault.Config{Addr: addr, Token: root, Key: notDerived}},
		{name: "key exportable", cfg: vault.Config{Addr: addr, Token: root, Key: exportable}},
		{name: "key not aes256-gcm96", cfg: vault.Config{Addr: addr, Token: root, Key: chacha}},
		{name: "key deletable", cfg: vault.Config{Addr: addr, Token: root, Key: deletable}},
		{name: "wrong mount", cfg: vault.Config{Addr: addr, Token: root, Key: vaulttest.Key, Mount: "transit2"}},
		{name: "bad token", cfg: vault.Config{Addr: addr, Token: domain.NewSecret("hvs.not-a-token"), Key: vaulttest.Key}, unavailable: true},
		{name: "nothing listening", cfg: vault.Config{Addr: "http://127.0.0.1:1", Token: root, Key: vaulttest.Key, Timeout: time.Second}, unavailable: true},
		{name: "invalid config", cfg: vault.Config{Addr: addr, Key: vaulttest.Key}},
	}
	for _, tc := range cases {
		c, err := vault.New(ctx, tc.cfg, nil)
		if err == nil {
			_ = c.Close()
			t.Errorf("%s: New succeeded, want an error", tc.name)
			continue
		}
		if got := errors.Is(err, domain.ErrUnavailable); got != tc.unavailable {
			t.Errorf("%s: errors.Is(err, ErrUnavailable) = %v, want %v (err: %v)", tc.name, got, tc.unavailable, err)
		}
		if strings.Contains(err.Error(), root.Reveal()) {
			t.Errorf("%s: error leaks the token", tc.name)
		}
	}

	// The misspelt key was not minted by the check (nor could encrypt mint it: disable_upsert).
	if s, err := admin.Logical().ReadWithContext(ctx, "transit/keys/"+vaulttest.Key+"x"); err != nil || s != nil {
		t.Errorf("misspelt key exists after New: %v, %v", s, err)
	}
	_, err := admin.Logical().WriteWithContext(ctx, "transit/encrypt/"+vaulttest.Key+"x",
		map[string]any{"plaintext": "eA==", "context": "eA=="})
	if err == nil {
		t.Error("encrypt to a missing key with the root token created it: disable_upsert is not set")
	}
}

func TestVaultConfigValidate(t *testing.T) {
	tok := domain.NewSecret("t")
	ok := vault.Config{Addr: "https://vault:8200", Token: tok, Key: "betterkey-tokens"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate of a good config: %v", err)
	}
	approle := vault.Config{Addr: "https://vault:8200", RoleID: "r", SecretID: tok, Key: "k"}
	if err := approle.Validate(); err != nil {
		t.Fatalf("Validate of an AppRole config: %v", err)
	}
	bad := map[string]func(*vault.Config){
		"no addr":            func(c *vault.Config) { c.Addr = "" },
		"addr no scheme":     func(c *vault.Config) { c.Addr = "vault:8200" },
		"addr ftp":           func(c *vault.Config) { c.Addr = "ftp://vault" },
		"no auth":            func(c *vault.Config) { c.Token = domain.Secret{} },
		"token and approle":  func(c *vault.Config) { c.RoleID, c.SecretID = "r", tok },
		"role without id":    func(c *vault.Config) { c.Token, c.RoleID = domain.Secret{}, "r" },
		"no key":             func(c *vault.Config) { c.Key = "" },
		"key with slash":     func(c *vault.Config) { c.Key = "a/b" },
		"key with dotdot":    func(c *vault.Config) { c.Key = ".." },
		"key with query":     func(c *vault.Config) { c.Key = "k?x=1" },
		"mount with dotdot":  func(c *vault.Config) { c.Mount = "transit/../sys" },
		"mount leading /":    func(c *vault.Config) { c.Mount = "/transit" },
		"negative timeout":   func(c *vault.Config) { c.Timeout = -time.Second },
		"huge timeout":       func(c *vault.Config) { c.Timeout = time.Hour },
		"approle mount junk": func(c *vault.Config) { c.AppRoleMount = "a b" },
	}
	for name, mutate := range bad {
		c := ok
		mutate(&c)
		if err := c.Validate(); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("%s: Validate = %v, want a KindInvalid error", name, err)
		}
	}
}
