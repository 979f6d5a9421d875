package domain

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// Sentinels of the secrets-at-rest cipher, compared with errors.Is.
var (
	// ErrSealedSecretInvalid means a stored secret cannot be opened: it was tampered with, bound to
	// another row, sealed by another backend, or sealed under a retired key version. It is
	// KindInternal because the caller cannot fix it; operators should alert on it, since a
	// swapped or altered ciphertext may be an attack.
	ErrSealedSecretInvalid = &Error{Kind: KindInternal, Code: "SEALED_SECRET_INVALID", Msg: "stored secret cannot be opened"}
	// ErrEmptySecret refuses to seal an empty value, so an empty ciphertext can never stand in for
	// a missing token.
	ErrEmptySecret = &Error{Kind: KindInvalid, Code: "EMPTY_SECRET", Msg: "secret must not be empty"}
)

// SecretBinding names the row a sealed secret belongs to. Ciphers authenticate it together with
// the ciphertext, so a ciphertext copied into another user's or connection's row, or reused for
// another purpose, fails to open. Only immutable identifiers belong here.
type SecretBinding struct {
	// Purpose says what the secret is, e.g. "smartcar.token_set" or "apple.refresh_token".
	Purpose string
	// UserID is the owning user.
	UserID UserID
	// ConnectionID is the vehicle connection the secret belongs to (the Apple client id for an
	// Apple refresh token), empty for per-user secrets.
	ConnectionID string
}

// CompareBindings orders bindings as the stores page them: purpose, user id and connection id,
// compared byte by byte (the databases' primary-key order).
func CompareBindings(a, b SecretBinding) int {
	return cmp.Or(
		cmp.Compare(a.Purpose, b.Purpose),
		cmp.Compare(a.UserID, b.UserID),
		cmp.Compare(a.ConnectionID, b.ConnectionID),
	)
}

// bindingLabel versions the canonical encoding; changing the encoding needs a new label, or every
// stored secret stops opening.
const bindingLabel = "betterkey/secret-binding/v1"

// Validate rejects a binding that does not name a row, which would make every such secret
// interchangeable.
func (b SecretBinding) Validate() error {
	if b.Purpose == "" {
		return Invalid("binding.purpose", "must not be empty")
	}
	if b.UserID == "" {
		return Invalid("binding.user_id", "must not be empty")
	}
	return nil
}

// Canonical is the unambiguous byte encoding that ciphers authenticate (as GCM associated data,
// or as a Vault key-derivation context): a version label and each field, each prefixed with its
// 4-byte big-endian length, so no two different bindings encode alike. It is frozen: stored
// secrets depend on it byte for byte.
func (b SecretBinding) Canonical() []byte {
	return b.AppendCanonical(make([]byte, 0, b.CanonicalLen()))
}

// CanonicalLen is the length of Canonical, so a caller can size a buffer for AppendCanonical.
func (b SecretBinding) CanonicalLen() int {
	return 4*4 + len(bindingLabel) + len(b.Purpose) + len(b.UserID) + len(b.ConnectionID)
}

// AppendCanonical appends Canonical to dst, for ciphers that keep the encoding in a buffer of
// their own instead of allocating one per call.
func (b SecretBinding) AppendCanonical(dst []byte) []byte {
	for _, f := range [...]string{bindingLabel, b.Purpose, string(b.UserID), b.ConnectionID} {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(f)))
		dst = append(dst, f...)
	}
	return dst
}

// SealedSecret is a secret encrypted at rest: "<scheme>:v<version>:<payload>", the scheme naming
// the backend that sealed it (so a row is never fed to the wrong backend) and the version naming
// the key version (so old rows stay readable after a rotation and a rewrap job can find them).
// The ciphertext is opaque and every printing path redacts it; Ciphertext is the one explicit way
// out, for storage adapters.
type SealedSecret struct {
	text    string
	scheme  string
	version int
}

// ParseSealed reads a stored ciphertext back. It checks the shape only; whether it opens is the
// cipher's business. A malformed value wraps ErrSealedSecretInvalid.
func ParseSealed(s string) (SealedSecret, error) {
	scheme, rest, ok := strings.Cut(s, ":v")
	if !ok || !validScheme(scheme) {
		return SealedSecret{}, fmt.Errorf("parse sealed secret: bad prefix: %w", ErrSealedSecretInvalid)
	}
	num, payload, ok := strings.Cut(rest, ":")
	if !ok || payload == "" || strings.Contains(payload, ":") {
		return SealedSecret{}, fmt.Errorf("parse sealed secret: bad layout: %w", ErrSealedSecretInvalid)
	}
	v, err := strconv.Atoi(num)
	if err != nil || v < 1 || num != strconv.Itoa(v) {
		return SealedSecret{}, fmt.Errorf("parse sealed secret: bad key version: %w", ErrSealedSecretInvalid)
	}
	return SealedSecret{text: s, scheme: scheme, version: v}, nil
}

// validScheme accepts short lowercase names such as "vault" or "local".
func validScheme(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// Ciphertext returns the stored form for the one place that needs it (a storage adapter).
func (s SealedSecret) Ciphertext() string { return s.text }

// KeyVersion reports the key version that sealed the secret; 0 for the zero value.
func (s SealedSecret) KeyVersion() int { return s.version }

// Scheme names the backend that sealed the secret, e.g. "vault" or "local".
func (s SealedSecret) Scheme() string { return s.scheme }

// IsZero reports whether nothing is sealed, so stores can tell "no token" from a token.
func (s SealedSecret) IsZero() bool { return s.text == "" }

// redactedForm shows what is safe about a sealed secret: its backend and key version.
func (s SealedSecret) redactedForm() string {
	if s.IsZero() {
		return "[SEALED none]"
	}
	return "[SEALED " + s.scheme + " v" + strconv.Itoa(s.version) + "]"
}

// String redacts the ciphertext.
func (s SealedSecret) String() string { return s.redactedForm() }

// GoString redacts %#v too.
func (s SealedSecret) GoString() string { return s.redactedForm() }

// Format redacts every fmt verb, including %v, %+v, %s, %q and %x.
func (s SealedSecret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.redactedForm())) }

// LogValue redacts in slog while keeping the key version, which rewrap logs want.
func (s SealedSecret) LogValue() slog.Value {
	return slog.GroupValue(slog.String("scheme", s.scheme), slog.Int("key_version", s.version))
}

// MarshalJSON redacts in JSON; storage uses Ciphertext, never JSON.
func (s SealedSecret) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(s.redactedForm())), nil
}

// MarshalText redacts in text encoders.
func (s SealedSecret) MarshalText() ([]byte, error) { return []byte(s.redactedForm()), nil }
