package keyring_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/betterkey/backend/adapters/keyring"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

func newKeyring(t *testing.T) (*keyring.Keyring, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "keyring.json")
	k, err := keyring.Open(path, true)
	if err != nil {
		t.Fatalf("Open(create): %v", err)
	}
	return k, path
}

func TestKeyringContract(t *testing.T) {
	contract.TokenCipher(t, func(t *testing.T) (ports.TokenCipher, ports.KeyManager) {
		k, _ := newKeyring(t)
		return k, k
	})
}

func TestKeyringCanary(t *testing.T) {
	k, _ := newKeyring(t)
	if err := k.Canary(t.Context()); err != nil {
		t.Fatalf("Canary: %v", err)
	}
}

func TestKeyringFileIsPrivate(t *testing.T) {
	k, path := newKeyring(t)
	wantMode(t, path, 0o600)
	wantMode(t, filepath.Dir(path), 0o700|fs.ModeDir)
	if _, err := k.Rotate(t.Context()); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	wantMode(t, path, 0o600)
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after rotation, want only the keyring (no temp files)", len(entries))
	}
}

func wantMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (fs.ModePerm | fs.ModeDir); got != want {
		t.Errorf("%s: mode %v, want %v", filepath.Base(path), got, want)
	}
}

func TestKeyringRefusesSharedFile(t *testing.T) {
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o660, 0o606} {
		_, path := newKeyring(t)
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := keyring.Open(path, true); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("Open of a %#o file: got %v, want a refusal", mode, err)
		}
	}
}

func TestKeyringRefusesMissingFileWithoutCreate(t *testing.T) {
	_, err := keyring.Open(filepath.Join(t.TempDir(), "none.json"), false)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(create=false) of a missing file: got %v, want fs.ErrNotExist", err)
	}
}

func TestKeyringRefusesCorruptFile(t *testing.T) {
	_, path := newKeyring(t)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(good, &doc); err != nil {
		t.Fatal(err)
	}
	key := doc["keys"].([]any)[0].(map[string]any)
	secretKey := key["key"].(string)
	edit := func(f func(doc, key map[string]any)) []byte {
		d := map[string]any{}
		_ = json.Unmarshal(good, &d)
		f(d, d["keys"].([]any)[0].(map[string]any))
		out, _ := json.Marshal(d)
		return out
	}
	cases := map[string][]byte{
		"truncated":          good[:len(good)/2],
		"empty":              {},
		"not json":           []byte("local keys"),
		"wrong format":       edit(func(d, _ map[string]any) { d["format"] = "something/v9" }),
		"no keys":            edit(func(d, _ map[string]any) { d["keys"] = []any{} }),
		"short key":          edit(func(_, k map[string]any) { k["key"] = "c2hvcnQ=" }),
		"key not base64":     edit(func(_, k map[string]any) { k["key"] = "!!" + secretKey[2:] }),
		"version gap":        edit(func(_, k map[string]any) { k["version"] = 2 }),
		"min decryption 0":   edit(func(d, _ map[string]any) { d["min_decryption_version"] = 0 }),
		"min above latest":   edit(func(d, _ map[string]any) { d["min_decryption_version"] = 2 }),
		"min not a number":   edit(func(d, _ map[string]any) { d["min_decryption_version"] = "1" }),
		"keys not an array":  edit(func(d, _ map[string]any) { d["keys"] = "k" }),
		"binary garbage":     {0xff, 0xfe, 0x00, 0x01},
		"two json documents": append(append([]byte{}, good...), good...),
	}
	for name, data := range cases {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := keyring.Open(path, true)
		if err == nil {
			t.Errorf("%s: Open accepted a corrupt keyring", name)
			continue
		}
		if strings.Contains(err.Error(), secretKey) || strings.Contains(err.Error(), secretKey[2:]) {
			t.Errorf("%s: error quotes key material", name)
		}
	}
}

func TestKeyringPersistsRotationAndRetirement(t *testing.T) {
	k, path := newKeyring(t)
	ctx := t.Context()
	b := domain.SecretBinding{Purpose: "smartcar.token_set", UserID: "u1", ConnectionID: "c1"}
	v1, err := k.Seal(ctx, b, domain.NewSecret("one"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	v2, err := k.Seal(ctx, b, domain.NewSecret("two"))
	if err != nil {
		t.Fatal(err)
	}

	again, err := keyring.Open(path, false)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if vs, _ := again.Versions(ctx); vs != (ports.KeyVersions{Latest: 2, MinDecryption: 1}) {
		t.Fatalf("reopened Versions: got %+v, want {Latest:2 MinDecryption:1}", vs)
	}
	for s, want := range map[domain.SealedSecret]string{v1: "one", v2: "two"} {
		got, err := again.Open(ctx, b, s)
		if err != nil || got.Reveal() != want {
			t.Fatalf("reopened Open(v%d): %v", s.KeyVersion(), err)
		}
	}

	if err := again.Retire(ctx, 2); err != nil {
		t.Fatal(err)
	}
	third, err := keyring.Open(path, false)
	if err != nil {
		t.Fatalf("reopen after retire: %v", err)
	}
	if _, err := third.Open(ctx, b, v1); !errors.Is(err, domain.ErrSealedSecretInvalid) {
		t.Fatalf("retired v1 after reopen: got %v, want domain.ErrSealedSecretInvalid", err)
	}
}

func TestKeyringSchemeDiffersFromVault(t *testing.T) {
	k, _ := newKeyring(t)
	b := domain.SecretBinding{Purpose: "p", UserID: "u"}
	s, err := k.Seal(t.Context(), b, domain.NewSecret("x"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Ciphertext(), "local:v1:") {
		t.Fatalf("ciphertext prefix: got %q, want local:v1:", s.Ciphertext()[:9])
	}
	vaultLike, err := domain.ParseSealed("vault" + strings.TrimPrefix(s.Ciphertext(), "local"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open(t.Context(), b, vaultLike); !errors.Is(err, domain.ErrSealedSecretInvalid) {
		t.Fatalf("Open of a vault: value: got %v, want domain.ErrSealedSecretInvalid", err)
	}
}
