package contract

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// NewCipherFunc returns a fresh cipher with a fresh key at version 1 and its key manager (usually
// the same value), cleaned up through t.
type NewCipherFunc func(t *testing.T) (ports.TokenCipher, ports.KeyManager)

// TokenCipher runs the sentences of ports.TokenCipher and ports.KeyManager against an
// implementation; the in-memory fake, the local keyring and the Vault adapter all pass it, which
// is what lets the core's tests trust the fake.
func TokenCipher(t *testing.T, newCipher NewCipherFunc) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newCipher) })
	t.Run("FreshNonce", func(t *testing.T) { testFreshNonce(t, newCipher) })
	t.Run("VersionTag", func(t *testing.T) { testVersionTag(t, newCipher) })
	t.Run("Rotation", func(t *testing.T) { testRotation(t, newCipher) })
	t.Run("Rewrap", func(t *testing.T) { testRewrap(t, newCipher) })
	t.Run("WrongBinding", func(t *testing.T) { testWrongBinding(t, newCipher) })
	t.Run("Tampered", func(t *testing.T) { testTampered(t, newCipher) })
	t.Run("Retire", func(t *testing.T) { testRetire(t, newCipher) })
	t.Run("RejectsBadInput", func(t *testing.T) { testBadInput(t, newCipher) })
	t.Run("Redacted", func(t *testing.T) { testRedacted(t, newCipher) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newCipher) })
}

// cipherBinding is a typical Smartcar token row.
func cipherBinding() domain.SecretBinding {
	return domain.SecretBinding{
		Purpose:      "smartcar.token_set",
		UserID:       "6f1c1d2e-7a44-4b5e-9c1a-0d2f3e4a5b6c",
		ConnectionID: "conn-0001",
	}
}

// cipherPlaintext looks like a token set and is easy to spot in any output.
const cipherPlaintext = `{"access_token":"CANARY-ACCESS-7f3a","refresh_token":"CANARY-REFRESH-91bc"}`

func mustSeal(t *testing.T, c ports.TokenCipher, b domain.SecretBinding, pt string) domain.SealedSecret {
	t.Helper()
	s, err := c.Seal(t.Context(), b, domain.NewSecret(pt))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return s
}

func mustOpen(t *testing.T, c ports.TokenCipher, b domain.SecretBinding, s domain.SealedSecret, want string) {
	t.Helper()
	got, err := c.Open(t.Context(), b, s)
	if err != nil {
		t.Fatalf("Open(v%d): %v", s.KeyVersion(), err)
	}
	if got.Reveal() != want {
		t.Fatalf("Open(v%d) returned a different plaintext (len %d, want len %d)", s.KeyVersion(), got.Len(), len(want))
	}
}

func wantInvalid(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, domain.ErrSealedSecretInvalid) {
		t.Errorf("%s: got error %v, want one wrapping domain.ErrSealedSecretInvalid", what, err)
	}
}

func testRoundTrip(t *testing.T, newCipher NewCipherFunc) {
	c, _ := newCipher(t)
	b := cipherBinding()
	for _, pt := range []string{cipherPlaintext, "x", strings.Repeat("é", 3000)} {
		mustOpen(t, c, b, mustSeal(t, c, b, pt), pt)
	}
	// A binding without a connection (per-user secrets such as Apple refresh tokens).
	userOnly := domain.SecretBinding{Purpose: "apple.refresh_token", UserID: b.UserID}
	mustOpen(t, c, userOnly, mustSeal(t, c, userOnly, "r.apple"), "r.apple")
}

func testFreshNonce(t *testing.T, newCipher NewCipherFunc) {
	c, _ := newCipher(t)
	b := cipherBinding()
	s1, s2 := mustSeal(t, c, b, cipherPlaintext), mustSeal(t, c, b, cipherPlaintext)
	if s1.Ciphertext() == s2.Ciphertext() {
		t.Fatal("sealing the same plaintext twice gave the same ciphertext")
	}
	n1, n2 := payload(t, s1)[:12], payload(t, s2)[:12]
	if bytes.Equal(n1, n2) {
		t.Fatal("two seals share a nonce")
	}
}

func testVersionTag(t *testing.T, newCipher NewCipherFunc) {
	c, km := newCipher(t)
	vs, err := km.Versions(t.Context())
	if err != nil {
		t.Fatalf("Versions: %v", err)
	}
	if vs != (ports.KeyVersions{Latest: 1, MinDecryption: 1}) {
		t.Fatalf("Versions of a new key: got %+v, want {Latest:1 MinDecryption:1}", vs)
	}
	s := mustSeal(t, c, cipherBinding(), cipherPlaintext)
	if s.KeyVersion() != 1 {
		t.Errorf("KeyVersion: got %d, want 1", s.KeyVersion())
	}
	if prefix := s.Scheme() + ":v1:"; !strings.HasPrefix(s.Ciphertext(), prefix) {
		t.Errorf("ciphertext does not start with %q", prefix)
	}
	// nonce (12) + ciphertext + tag (16), like Vault transit's aes256-gcm96.
	if got, want := len(payload(t, s)), 12+len(cipherPlaintext)+16; got != want {
		t.Errorf("payload length: got %d, want %d", got, want)
	}
	back, err := domain.ParseSealed(s.Ciphertext())
	if err != nil {
		t.Fatalf("ParseSealed(Ciphertext()): %v", err)
	}
	if back != s {
		t.Error("ParseSealed(Ciphertext()) differs from the sealed value")
	}
	mustOpen(t, c, cipherBinding(), back, cipherPlaintext)
}

func testRotation(t *testing.T, newCipher NewCipherFunc) {
	c, km := newCipher(t)
	b := cipherBinding()
	old := mustSeal(t, c, b, "old-token")
	v, err := km.Rotate(t.Context())
	if err != nil || v != 2 {
		t.Fatalf("Rotate: got %d, %v; want 2, nil", v, err)
	}
	if vs, _ := km.Versions(t.Context()); vs != (ports.KeyVersions{Latest: 2, MinDecryption: 1}) {
		t.Fatalf("Versions after rotation: got %+v, want {Latest:2 MinDecryption:1}", vs)
	}
	cur := mustSeal(t, c, b, "new-token")
	if cur.KeyVersion() != 2 {
		t.Errorf("seal after rotation: KeyVersion %d, want 2", cur.KeyVersion())
	}
	mustOpen(t, c, b, old, "old-token")
	mustOpen(t, c, b, cur, "new-token")
}

func testRewrap(t *testing.T, newCipher NewCipherFunc) {
	c, km := newCipher(t)
	ctx := t.Context()
	b1 := cipherBinding()
	b2 := b1
	b2.ConnectionID = "conn-0002"
	s1, s2 := mustSeal(t, c, b1, "token-one"), mustSeal(t, c, b2, "token-two")
	if _, err := km.Rotate(ctx); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	items := []ports.RewrapItem{
		{Binding: b1, Sealed: s1},
		{Binding: b1, Sealed: s2}, // bound to b2: must fail alone
		{Binding: b2, Sealed: s2},
	}
	res, err := c.Rewrap(ctx, items)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if len(res) != len(items) {
		t.Fatalf("Rewrap: got %d results, want %d", len(res), len(items))
	}
	wantInvalid(t, "rewrap of a value under the wrong binding", res[1].Err)
	if !res[1].Sealed.IsZero() {
		t.Error("a failed rewrap item carries a sealed value")
	}
	for _, i := range []int{0, 2} {
		if res[i].Err != nil {
			t.Fatalf("Rewrap item %d: %v", i, res[i].Err)
		}
		if res[i].Sealed.KeyVersion() != 2 {
			t.Errorf("Rewrap item %d: KeyVersion %d, want 2", i, res[i].Sealed.KeyVersion())
		}
	}
	mustOpen(t, c, b1, res[0].Sealed, "token-one")
	mustOpen(t, c, b2, res[2].Sealed, "token-two")
	wantInvalid(t, "open rewrapped value under another binding", openErr(ctx, c, b2, res[0].Sealed))

	// After retiring v1, only the rewrapped values still open.
	if err := km.Retire(ctx, 2); err != nil {
		t.Fatalf("Retire(2): %v", err)
	}
	mustOpen(t, c, b1, res[0].Sealed, "token-one")
	wantInvalid(t, "open the v1 original after retirement", openErr(ctx, c, b1, s1))

	empty, err := c.Rewrap(ctx, nil)
	if err != nil || len(empty) != 0 {
		t.Errorf("Rewrap(nil): got %d results, %v; want 0, nil", len(empty), err)
	}
}

func openErr(ctx context.Context, c ports.TokenCipher, b domain.SecretBinding, s domain.SealedSecret) error {
	_, err := c.Open(ctx, b, s)
	return err
}

func testWrongBinding(t *testing.T, newCipher NewCipherFunc) {
	c, _ := newCipher(t)
	b := cipherBinding()
	s := mustSeal(t, c, b, cipherPlaintext)
	cases := map[string]func(*domain.SecretBinding){
		"purpose":       func(x *domain.SecretBinding) { x.Purpose = "apple.refresh_token" },
		"user":          func(x *domain.SecretBinding) { x.UserID = "0a1b2c3d-0000-4000-8000-000000000000" },
		"connection":    func(x *domain.SecretBinding) { x.ConnectionID = "conn-0002" },
		"no connection": func(x *domain.SecretBinding) { x.ConnectionID = "" },
		// Same bytes, different field boundaries: the encoding must not be ambiguous.
		"purpose/user boundary": func(x *domain.SecretBinding) { x.Purpose, x.UserID = x.Purpose+string(x.UserID[:4]), x.UserID[4:] },
		"user/connection boundary": func(x *domain.SecretBinding) {
			x.UserID, x.ConnectionID = x.UserID+domain.UserID(x.ConnectionID[:4]), x.ConnectionID[4:]
		},
	}
	for name, mutate := range cases {
		wrong := b
		mutate(&wrong)
		_, err := c.Open(t.Context(), wrong, s)
		if wrong.Validate() != nil {
			if domain.KindOf(err) != domain.KindInvalid {
				t.Errorf("%s: got %v, want a KindInvalid error", name, err)
			}
			continue
		}
		wantInvalid(t, "open with wrong "+name, err)
	}
}

func testTampered(t *testing.T, newCipher NewCipherFunc) {
	c, km := newCipher(t)
	ctx := t.Context()
	b := cipherBinding()
	s := mustSeal(t, c, b, cipherPlaintext)
	raw := payload(t, s)
	prefix := s.Ciphertext()[:strings.LastIndexByte(s.Ciphertext(), ':')+1]
	for _, bit := range []int{0, 12 * 8, len(raw)*8/2 + 3, len(raw)*8 - 1} { // nonce, body, tag
		flipped := bytes.Clone(raw)
		flipped[bit/8] ^= 1 << (bit % 8)
		wantInvalid(t, fmt.Sprintf("open with bit %d flipped", bit), openErr(ctx, c, b, reparse(t, prefix, flipped)))
	}
	wantInvalid(t, "open truncated", openErr(ctx, c, b, reparse(t, prefix, raw[:len(raw)-1])))
	wantInvalid(t, "open too short", openErr(ctx, c, b, reparse(t, prefix, raw[:20])))

	// Version tag moved to a version that exists (after rotation) or does not.
	if _, err := km.Rotate(ctx); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	for _, v := range []int{2, 99} {
		moved := s.Scheme() + ":v" + strconv.Itoa(v) + ":" + base64.StdEncoding.EncodeToString(raw)
		wantInvalid(t, fmt.Sprintf("open with version tag v%d", v), openErr(ctx, c, b, mustParse(t, moved)))
	}
	// Another backend's value, and the zero value.
	foreign := "other:v1:" + base64.StdEncoding.EncodeToString(raw)
	wantInvalid(t, "open another scheme", openErr(ctx, c, b, mustParse(t, foreign)))
	wantInvalid(t, "open zero value", openErr(ctx, c, b, domain.SealedSecret{}))
	for _, bad := range []string{"", "vault", "vault:v0:AAAA", "vault:v1:", "vault:v01:AAAA", "VAULT:v1:AAAA", "x:v1:a:b"} {
		if _, err := domain.ParseSealed(bad); !errors.Is(err, domain.ErrSealedSecretInvalid) {
			t.Errorf("ParseSealed(%q): got %v, want domain.ErrSealedSecretInvalid", bad, err)
		}
	}
}

func testRetire(t *testing.T, newCipher NewCipherFunc) {
	c, km := newCipher(t)
	ctx := t.Context()
	b := cipherBinding()
	v1 := mustSeal(t, c, b, "v1-token")
	if _, err := km.Rotate(ctx); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	v2 := mustSeal(t, c, b, "v2-token")
	for _, bad := range []int{0, -1, 3} {
		if err := km.Retire(ctx, bad); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("Retire(%d): got %v, want a KindInvalid error", bad, err)
		}
	}
	if err := km.Retire(ctx, 2); err != nil {
		t.Fatalf("Retire(2): %v", err)
	}
	if vs, _ := km.Versions(ctx); vs != (ports.KeyVersions{Latest: 2, MinDecryption: 2}) {
		t.Errorf("Versions after Retire(2): got %+v, want {Latest:2 MinDecryption:2}", vs)
	}
	wantInvalid(t, "open a retired version", openErr(ctx, c, b, v1))
	res, err := c.Rewrap(ctx, []ports.RewrapItem{{Binding: b, Sealed: v1}})
	if err != nil || len(res) != 1 {
		t.Fatalf("Rewrap of a retired version: got %d results, %v", len(res), err)
	}
	wantInvalid(t, "rewrap a retired version", res[0].Err)
	mustOpen(t, c, b, v2, "v2-token")
	mustOpen(t, c, b, mustSeal(t, c, b, "v2-again"), "v2-again")
}

func testBadInput(t *testing.T, newCipher NewCipherFunc) {
	c, _ := newCipher(t)
	ctx := t.Context()
	if _, err := c.Seal(ctx, cipherBinding(), domain.NewSecret("")); !errors.Is(err, domain.ErrEmptySecret) {
		t.Errorf("Seal of an empty plaintext: got %v, want domain.ErrEmptySecret", err)
	}
	s := mustSeal(t, c, cipherBinding(), cipherPlaintext)
	for name, b := range map[string]domain.SecretBinding{
		"no purpose": {UserID: "u", ConnectionID: "c"},
		"no user":    {Purpose: "p", ConnectionID: "c"},
	} {
		if _, err := c.Seal(ctx, b, domain.NewSecret("x")); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("Seal with %s: got %v, want a KindInvalid error", name, err)
		}
		if _, err := c.Open(ctx, b, s); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("Open with %s: got %v, want a KindInvalid error", name, err)
		}
	}
}

func testRedacted(t *testing.T, newCipher NewCipherFunc) {
	c, _ := newCipher(t)
	s := mustSeal(t, c, cipherBinding(), cipherPlaintext)
	text := s.Ciphertext()
	body := text[strings.LastIndexByte(text, ':')+1:]
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("sealed", "value", s, "row", struct{ Token domain.SealedSecret }{s})
	slog.New(slog.NewTextHandler(&logs, nil)).Info("sealed", "value", s)
	js, err := json.Marshal(struct{ Token domain.SealedSecret }{s})
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", s), "%+v": fmt.Sprintf("%+v", s), "%#v": fmt.Sprintf("%#v", s),
		"%s": fmt.Sprintf("%s", s), "%q": fmt.Sprintf("%q", s), "%x": fmt.Sprintf("%x", s),
		"struct %+v": fmt.Sprintf("%+v", struct{ S domain.SealedSecret }{s}),
		"String":     s.String(), "slog": logs.String(), "json": string(js),
		"error": fmt.Errorf("store row: %v", s).Error(),
	}
	for name, out := range outputs {
		if strings.Contains(out, body) || strings.Contains(out, body[:16]) || strings.Contains(out, "CANARY") {
			t.Errorf("%s prints the sealed value: %s", name, out)
		}
	}
}

func testConcurrent(t *testing.T, newCipher NewCipherFunc) {
	c, km := newCipher(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 4 {
		wg.Go(func() {
			b := cipherBinding()
			b.ConnectionID = fmt.Sprintf("conn-%d", g)
			for i := range 5 {
				pt := fmt.Sprintf("token-%d-%d", g, i)
				s, err := c.Seal(ctx, b, domain.NewSecret(pt))
				if err != nil {
					errs <- err
					return
				}
				got, err := c.Open(ctx, b, s)
				if err != nil || got.Reveal() != pt {
					errs <- fmt.Errorf("open own value: %v", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		if _, err := km.Rotate(ctx); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// payload decodes the base64 part of a sealed value.
func payload(t *testing.T, s domain.SealedSecret) []byte {
	t.Helper()
	text := s.Ciphertext()
	raw, err := base64.StdEncoding.DecodeString(text[strings.LastIndexByte(text, ':')+1:])
	if err != nil {
		t.Fatalf("payload is not standard base64: %v", err)
	}
	return raw
}

func reparse(t *testing.T, prefix string, raw []byte) domain.SealedSecret {
	t.Helper()
	return mustParse(t, prefix+base64.StdEncoding.EncodeToString(raw))
}

func mustParse(t *testing.T, text string) domain.SealedSecret {
	t.Helper()
	s, err := domain.ParseSealed(text)
	if err != nil {
		t.Fatalf("ParseSealed: %v", err)
	}
	return s
}
