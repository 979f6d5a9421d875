package memory

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// cipherScheme prefixes values sealed by the fake, so they never pass for a real backend's.
const cipherScheme = "mem"

// Cipher is an in-memory ports.TokenCipher and ports.KeyManager with real AES-256-GCM, keys that
// live only as long as the value, and the same contract as the keyring and Vault adapters. It is
// safe for concurrent use.
type Cipher struct {
	mu     sync.RWMutex
	aeads  []cipher.AEAD // index = version-1
	minDec int
}

var (
	_ ports.TokenCipher = (*Cipher)(nil)
	_ ports.KeyManager  = (*Cipher)(nil)
)

// NewCipher returns a cipher with one fresh key version.
func NewCipher() *Cipher {
	c := &Cipher{minDec: 1}
	c.aeads = append(c.aeads, newMemAEAD())
	return c
}

// newMemAEAD draws a fresh AES-256-GCM key.
func newMemAEAD() cipher.AEAD {
	key := make([]byte, 32)
	_, _ = rand.Read(key)           // crypto/rand.Read never fails since Go 1.24
	block, _ := aes.NewCipher(key)  // cannot fail for a 32-byte key
	aead, _ := cipher.NewGCM(block) // cannot fail for AES
	return aead
}

// Seal implements ports.TokenCipher.
func (c *Cipher) Seal(_ context.Context, b domain.SecretBinding, plaintext domain.Secret) (domain.SealedSecret, error) {
	if err := b.Validate(); err != nil {
		return domain.SealedSecret{}, fmt.Errorf("seal secret: %w", err)
	}
	if plaintext.Empty() {
		return domain.SealedSecret{}, fmt.Errorf("seal secret: %w", domain.ErrEmptySecret)
	}
	return c.seal(b, []byte(plaintext.Reveal()))
}

// Open implements ports.TokenCipher.
func (c *Cipher) Open(_ context.Context, b domain.SecretBinding, s domain.SealedSecret) (domain.Secret, error) {
	pt, err := c.open(b, s)
	if err != nil {
		return domain.Secret{}, fmt.Errorf("open secret: %w", err)
	}
	return domain.NewSecret(string(pt)), nil
}

// Rewrap implements ports.TokenCipher.
func (c *Cipher) Rewrap(ctx context.Context, items []ports.RewrapItem) ([]ports.RewrapResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rewrap secrets: %w", err)
	}
	out := make([]ports.RewrapResult, len(items))
	for i, it := range items {
		pt, err := c.open(it.Binding, it.Sealed)
		if err != nil {
			out[i].Err = fmt.Errorf("rewrap secret %d: %w", i, err)
			continue
		}
		out[i].Sealed, out[i].Err = c.seal(it.Binding, pt)
	}
	return out, nil
}

// Rotate implements ports.KeyManager.
func (c *Cipher) Rotate(_ context.Context) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aeads = append(c.aeads, newMemAEAD())
	return len(c.aeads), nil
}

// Versions implements ports.KeyManager.
func (c *Cipher) Versions(_ context.Context) (ports.KeyVersions, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return ports.KeyVersions{Latest: len(c.aeads), MinDecryption: c.minDec}, nil
}

// Retire implements ports.KeyManager.
func (c *Cipher) Retire(_ context.Context, minDecryptionVersion int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if minDecryptionVersion < 1 || minDecryptionVersion > len(c.aeads) {
		return fmt.Errorf("retire key versions: %w",
			domain.Invalid("min_decryption_version", "must be between 1 and the latest key version"))
	}
	c.minDec = minDecryptionVersion
	return nil
}

// seal encrypts under the latest version with a fresh nonce and the binding as associated data.
func (c *Cipher) seal(b domain.SecretBinding, pt []byte) (domain.SealedSecret, error) {
	c.mu.RLock()
	v := len(c.aeads)
	aead := c.aeads[v-1]
	c.mu.RUnlock()
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	raw := aead.Seal(nonce, nonce, pt, b.Canonical())
	return domain.ParseSealed(cipherScheme + ":v" + strconv.Itoa(v) + ":" + base64.StdEncoding.EncodeToString(raw))
}

// open checks scheme, version window, and authenticity.
func (c *Cipher) open(b domain.SecretBinding, s domain.SealedSecret) ([]byte, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	if s.Scheme() != cipherScheme {
		return nil, fmt.Errorf("not sealed by the in-memory cipher: %w", domain.ErrSealedSecretInvalid)
	}
	v := s.KeyVersion()
	c.mu.RLock()
	ok := v >= c.minDec && v <= len(c.aeads)
	var aead cipher.AEAD
	if ok {
		aead = c.aeads[v-1]
	}
	c.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("key version %d is retired or unknown: %w", v, domain.ErrSealedSecretInvalid)
	}
	text := s.Ciphertext()
	raw, err := base64.StdEncoding.DecodeString(text[strings.LastIndexByte(text, ':')+1:])
	if err != nil || len(raw) <= aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("malformed payload: %w", domain.ErrSealedSecretInvalid)
	}
	n := aead.NonceSize()
	pt, err := aead.Open(nil, raw[:n], raw[n:], b.Canonical())
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", domain.ErrSealedSecretInvalid)
	}
	return pt, nil
}
