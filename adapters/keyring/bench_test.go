package keyring_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"path/filepath"
	"testing"

	"github.com/betterkey/backend/adapters/keyring"
	"github.com/betterkey/backend/domain"
)

// benchSizes are a Smartcar token set (~256 B) and a large value.
var benchSizes = []struct {
	name string
	n    int
}{{"256B", 256}, {"4KiB", 4096}}

var benchBinding = domain.SecretBinding{
	Purpose: "smartcar.token_set", UserID: "6f1c1d2e-7a44-4b5e-9c1a-0d2f3e4a5b6c", ConnectionID: "conn-0001",
}

func benchKeyring(b *testing.B) *keyring.Keyring {
	k, err := keyring.Open(filepath.Join(b.TempDir(), "keyring.json"), true)
	if err != nil {
		b.Fatal(err)
	}
	return k
}

func BenchmarkKeyringSeal(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			k := benchKeyring(b)
			pt := domain.NewSecret(string(make([]byte, sz.n)))
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if _, err := k.Seal(b.Context(), benchBinding, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkKeyringOpen(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			k := benchKeyring(b)
			s, err := k.Seal(b.Context(), benchBinding, domain.NewSecret(string(make([]byte, sz.n))))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if _, err := k.Open(b.Context(), benchBinding, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// rawGCM is the floor the keyring is compared with: AES-256-GCM from the standard library on the
// same payload and associated data, with a fresh random nonce, and nothing else.
func rawGCM(b *testing.B) cipher.AEAD {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	return aead
}

func BenchmarkRawGCMSeal(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			aead := rawGCM(b)
			pt, ad := make([]byte, sz.n), benchBinding.Canonical()
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				nonce := make([]byte, 12, 12+sz.n+16)
				_, _ = rand.Read(nonce)
				_ = aead.Seal(nonce, nonce, pt, ad)
			}
		})
	}
}

func BenchmarkRawGCMOpen(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			aead := rawGCM(b)
			nonce := make([]byte, 12)
			_, _ = rand.Read(nonce)
			ad := benchBinding.Canonical()
			ct := aead.Seal(nil, nonce, make([]byte, sz.n), ad)
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if _, err := aead.Open(nil, nonce, ct, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawGCMBase64Seal adds the base64 text encoding that the wire format (like Vault's)
// requires; with hardware AES-GCM the encoding costs more than the encryption, so this is the
// floor for any text-format cipher.
func BenchmarkRawGCMBase64Seal(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			aead := rawGCM(b)
			pt, ad := make([]byte, sz.n), benchBinding.Canonical()
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				nonce := make([]byte, 12, 12+sz.n+16)
				_, _ = rand.Read(nonce)
				_ = base64.StdEncoding.EncodeToString(aead.Seal(nonce, nonce, pt, ad))
			}
		})
	}
}

// BenchmarkRawGCMBase64Open is the matching floor for Open.
func BenchmarkRawGCMBase64Open(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			aead := rawGCM(b)
			nonce := make([]byte, 12)
			_, _ = rand.Read(nonce)
			ad := benchBinding.Canonical()
			text := base64.StdEncoding.EncodeToString(aead.Seal(nonce, nonce, make([]byte, sz.n), ad))
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				raw, err := base64.StdEncoding.DecodeString(text)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := aead.Open(raw[12:12], raw[:12], raw[12:], ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
