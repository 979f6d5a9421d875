// Package keyring is the local TokenCipher and KeyManager, the development default when no Vault
// is configured: a file of versioned 256-bit keys and AES-256-GCM in process. Its wire format
// mirrors Vault transit's ("local:v<N>:" + base64(nonce || ciphertext || tag)) with its own
// prefix, so a row sealed locally is never mistaken for a Vault one. The row binding is the GCM
// associated data.
//
// The keyring file is owned by one process: rotation rewrites it atomically, but two processes
// rotating the same file would each mint a different key under the same version. Staging and
// production refuse this backend (SPEC §9); they use Vault.
package keyring

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/betterkey/backend/adapters/cipherprobe"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Scheme prefixes every value this package seals.
const Scheme = "local"

const (
	nonceSize = 12 // the standard GCM nonce, drawn fresh from crypto/rand for every seal
	tagSize   = 16
)

// Keyring is a file-backed versioned AES-256-GCM keyring. It is safe for concurrent use.
type Keyring struct {
	path string

	mu    sync.RWMutex
	state state
}

var (
	_ ports.TokenCipher = (*Keyring)(nil)
	_ ports.KeyManager  = (*Keyring)(nil)
)

// Seal implements ports.TokenCipher.
func (k *Keyring) Seal(_ context.Context, b domain.SecretBinding, plaintext domain.Secret) (domain.SealedSecret, error) {
	if err := b.Validate(); err != nil {
		return domain.SealedSecret{}, fmt.Errorf("seal secret: %w", err)
	}
	if plaintext.Empty() {
		return domain.SealedSecret{}, fmt.Errorf("seal secret: %w", domain.ErrEmptySecret)
	}
	k.mu.RLock()
	v := k.state.latest()
	aead := k.state.aeads[v-1]
	k.mu.RUnlock()
	return seal(aead, v, b, []byte(plaintext.Reveal()))
}

// Open implements ports.TokenCipher.
func (k *Keyring) Open(_ context.Context, b domain.SecretBinding, s domain.SealedSecret) (domain.Secret, error) {
	pt, err := k.open(b, s)
	if err != nil {
		return domain.Secret{}, fmt.Errorf("open secret: %w", err)
	}
	return domain.NewSecret(string(pt)), nil
}

// Rewrap implements ports.TokenCipher; the plaintext stays inside this call.
func (k *Keyring) Rewrap(ctx context.Context, items []ports.RewrapItem) ([]ports.RewrapResult, error) {
	out := make([]ports.RewrapResult, len(items))
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("rewrap secrets: %w", err)
		}
		pt, err := k.open(it.Binding, it.Sealed)
		if err != nil {
			out[i].Err = fmt.Errorf("rewrap secret %d: %w", i, err)
			continue
		}
		k.mu.RLock()
		v := k.state.latest()
		aead := k.state.aeads[v-1]
		k.mu.RUnlock()
		out[i].Sealed, out[i].Err = seal(aead, v, it.Binding, pt)
		clear(pt)
	}
	return out, nil
}

// Canary runs the startup self-test (round trip plus a wrong binding that must fail).
func (k *Keyring) Canary(ctx context.Context) error { return cipherprobe.Canary(ctx, k) }

// open authenticates and decrypts s for b; every failure wraps domain.ErrSealedSecretInvalid
// except an invalid binding.
func (k *Keyring) open(b domain.SecretBinding, s domain.SealedSecret) ([]byte, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	if s.Scheme() != Scheme {
		return nil, fmt.Errorf("not sealed by the local keyring: %w", domain.ErrSealedSecretInvalid)
	}
	v := s.KeyVersion()
	k.mu.RLock()
	latest, minDec := k.state.latest(), k.state.minDecryption
	var aead cipher.AEAD
	if v >= 1 && v <= latest {
		aead = k.state.aeads[v-1]
	}
	k.mu.RUnlock()
	switch {
	case aead == nil:
		return nil, fmt.Errorf("unknown key version %d: %w", v, domain.ErrSealedSecretInvalid)
	case v < minDec:
		return nil, fmt.Errorf("key version %d is retired: %w", v, domain.ErrSealedSecretInvalid)
	}
	text := s.Ciphertext()
	b64 := text[strings.LastIndexByte(text, ':')+1:]
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Decode(raw, []byte(b64))
	if err != nil || n <= nonceSize+tagSize {
		return nil, fmt.Errorf("malformed payload: %w", domain.ErrSealedSecretInvalid)
	}
	// Decrypt in place: the plaintext overwrites the ciphertext in raw.
	pt, err := aead.Open(raw[nonceSize:nonceSize], raw[:nonceSize], raw[nonceSize:n], b.Canonical())
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", domain.ErrSealedSecretInvalid)
	}
	return pt, nil
}

// seal encrypts pt under version v with a fresh random nonce and b as associated data.
func seal(aead cipher.AEAD, v int, b domain.SecretBinding, pt []byte) (domain.SealedSecret, error) {
	buf := make([]byte, nonceSize, nonceSize+len(pt)+tagSize)
	_, _ = rand.Read(buf) // crypto/rand.Read never fails since Go 1.24
	buf = aead.Seal(buf, buf, pt, b.Canonical())
	prefix := Scheme + ":v" + strconv.Itoa(v) + ":"
	text := make([]byte, len(prefix)+base64.StdEncoding.EncodedLen(len(buf)))
	copy(text, prefix)
	base64.StdEncoding.Encode(text[len(prefix):], buf)
	s, err := domain.ParseSealed(string(text))
	if err != nil {
		return domain.SealedSecret{}, fmt.Errorf("seal secret: %w", err)
	}
	return s, nil
}
