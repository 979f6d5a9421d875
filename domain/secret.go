package domain

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
)

// Secret holds a value that must never reach a log line, an error message or a response by
// accident. Every printing path redacts it; Reveal is the one explicit way out.
type Secret struct{ v string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{v: s} }

// Reveal returns the raw value for the one place that needs it (a signature, an outbound call).
func (s Secret) Reveal() string { return s.v }

// Empty reports whether no value is set.
func (s Secret) Empty() bool { return s.v == "" }

// Len reports the length, which logs may carry instead of the value.
func (s Secret) Len() int { return len(s.v) }

const redacted = "[REDACTED]"

// String redacts.
func (s Secret) String() string { return redacted }

// GoString redacts %#v too.
func (s Secret) GoString() string { return redacted }

// Format redacts every fmt verb, including %v, %s, %q and %x.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue redacts in slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON redacts in JSON.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText redacts in text encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// TokenHash is the SHA-256 of an opaque bearer value (refresh token, nonce, OAuth state). Stores
// keep only hashes, so a database dump does not yield usable tokens.
type TokenHash [sha256.Size]byte

// HashToken hashes an opaque bearer value.
func HashToken(s string) TokenHash { return sha256.Sum256([]byte(s)) }

// Hex is the lowercase hex form used as a storage key.
func (h TokenHash) Hex() string { return hex.EncodeToString(h[:]) }

// Equal compares in constant time.
func (h TokenHash) Equal(o TokenHash) bool { return subtle.ConstantTimeCompare(h[:], o[:]) == 1 }

// ParseTokenHash reads the Hex form back.
func ParseTokenHash(s string) (TokenHash, bool) {
	var h TokenHash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, false
	}
	copy(h[:], b)
	return h, true
}

// NewOpaqueToken returns 256 bits from the CSPRNG, base64url without padding.
func NewOpaqueToken() Secret {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return NewSecret(base64.RawURLEncoding.EncodeToString(b[:]))
}
