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
	"slices"
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
	return seal(aead, v, b, plaintext.Reveal())
}

// Open implements ports.TokenCipher.
func (k *Keyring) Open(_ context.Context, b domain.SecretBinding, s domain.SealedSecret) (domain.Secret, error) {
	var out domain.Secret
	if err := k.open(b, s, func(pt []byte) { out = domain.NewSecret(string(pt)) }); err != nil {
		return domain.Secret{}, fmt.Errorf("open secret: %w", err)
	}
	return out, nil
}

// Rewrap implements ports.TokenCipher; the plaintext stays inside this call.
func (k *Keyring) Rewrap(ctx context.Context, items []ports.RewrapItem) ([]ports.RewrapResult, error) {
	out := make([]ports.RewrapResult, len(items))
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("rewrap secrets: %w", err)
		}
		k.mu.RLock()
		v := k.state.latest()
		aead := k.state.aeads[v-1]
		k.mu.RUnlock()
		err := k.open(it.Binding, it.Sealed, func(pt []byte) {
			out[i].Sealed, out[i].Err = seal(aead, v, it.Binding, pt)
		})
		if err != nil {
			out[i].Err = fmt.Errorf("rewrap secret %d: %w", i, err)
		}
	}
	return out, nil
}

// Canary runs the startup self-test (round trip plus a wrong binding that must fail).
func (k *Keyring) Canary(ctx context.Context) error { return cipherprobe.Canary(ctx, k) }

// open authenticates and decrypts s for b and hands the plaintext to use, which must not keep it:
// the buffer is wiped when use returns. Every failure wraps domain.ErrSealedSecretInvalid except
// an invalid binding.
func (k *Keyring) open(b domain.SecretBinding, s domain.SealedSecret, use func(pt []byte)) error {
	if err := b.Validate(); err != nil {
		return err
	}
	if s.Scheme() != Scheme {
		return fmt.Errorf("not sealed by the local keyring: %w", domain.ErrSealedSecretInvalid)
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
		return fmt.Errorf("unknown key version %d: %w", v, domain.ErrSealedSecretInvalid)
	case v < minDec:
		return fmt.Errorf("key version %d is retired: %w", v, domain.ErrSealedSecretInvalid)
	}
	// The payload follows the second colon ("local:v<N>:"); ParseSealed allows no other.
	text := s.Ciphertext()
	b64 := text[len(Scheme)+1:]
	b64 = b64[strings.IndexByte(b64, ':')+1:]
	maxRaw := base64.StdEncoding.DecodedLen(len(b64))
	buf := getBuf(maxRaw + b.CanonicalLen())
	defer putBuf(buf)
	n, ok := decodeBase64(*buf, b64)
	if !ok || n <= nonceSize+tagSize {
		return fmt.Errorf("malformed payload: %w", domain.ErrSealedSecretInvalid)
	}
	raw, ad := (*buf)[:n], b.AppendCanonical((*buf)[maxRaw:maxRaw])
	// Decrypt in place: the plaintext overwrites the ciphertext in the pooled buffer, which putBuf
	// wipes once use has taken what it needs.
	pt, err := aead.Open(raw[nonceSize:nonceSize], raw[:nonceSize], raw[nonceSize:], ad)
	if err != nil {
		return fmt.Errorf("authenticate: %w", domain.ErrSealedSecretInvalid)
	}
	use(pt)
	return nil
}

// seal encrypts pt under version v with a fresh random nonce and b as associated data. It copies
// pt straight into a pooled buffer and encrypts it there, so the plaintext is never copied again
// and the text form is the only allocation that outlives the call.
func seal[T string | []byte](aead cipher.AEAD, v int, b domain.SecretBinding, pt T) (domain.SealedSecret, error) {
	sealedLen := nonceSize + len(pt) + tagSize
	buf := getBuf(sealedLen + b.CanonicalLen())
	defer putBuf(buf)
	raw, ad := *buf, b.AppendCanonical((*buf)[sealedLen:sealedLen])
	_, _ = rand.Read(raw[:nonceSize]) // crypto/rand.Read never fails since Go 1.24
	copy(raw[nonceSize:], pt)
	raw = raw[:nonceSize+len(aead.Seal(raw[nonceSize:nonceSize], raw[:nonceSize], raw[nonceSize:nonceSize+len(pt)], ad))]

	var text strings.Builder
	var num [20]byte
	version := strconv.AppendInt(num[:0], int64(v), 10)
	text.Grow(len(Scheme) + 2 + len(version) + 1 + base64.StdEncoding.EncodedLen(len(raw)))
	text.WriteString(Scheme)
	text.WriteString(":v")
	text.Write(version)
	text.WriteByte(':')
	encodeBase64(&text, raw)
	s, err := domain.ParseSealed(text.String())
	if err != nil {
		return domain.SealedSecret{}, fmt.Errorf("seal secret: %w", err)
	}
	return s, nil
}

// bufs holds the scratch buffers of seal and open. They carry plaintext for a moment, so putBuf
// wipes them before they go back.
var bufs = sync.Pool{New: func() any { return new([]byte) }}

// getBuf returns a pooled buffer of length n.
func getBuf(n int) *[]byte {
	b := bufs.Get().(*[]byte)
	*b = slices.Grow((*b)[:0], n)[:n]
	return b
}

func putBuf(b *[]byte) {
	clear(*b)
	bufs.Put(b)
}

// base64Chunk is a multiple of 4 text bytes (3 raw bytes each), so chunks never split a quantum
// and padding can only appear in the last one.
const base64Chunk = 512

// encodeBase64 appends the standard base64 of raw to w through a stack buffer, without a
// temporary copy of the whole text.
func encodeBase64(w *strings.Builder, raw []byte) {
	var chunk [base64Chunk]byte
	const rawChunk = base64Chunk / 4 * 3
	for len(raw) > 0 {
		n := min(len(raw), rawChunk)
		base64.StdEncoding.Encode(chunk[:], raw[:n])
		w.Write(chunk[:base64.StdEncoding.EncodedLen(n)])
		raw = raw[n:]
	}
}

// decodeBase64 decodes the standard base64 text into dst (at least DecodedLen(len(text)) long)
// through a stack buffer, so the text is not first converted to a byte slice.
func decodeBase64(dst []byte, text string) (int, bool) {
	var chunk [base64Chunk]byte
	n := 0
	for len(text) > 0 {
		m := copy(chunk[:], text)
		d, err := base64.StdEncoding.Decode(dst[n:], chunk[:m])
		if err != nil {
			return 0, false
		}
		n += d
		text = text[m:]
	}
	return n, true
}
