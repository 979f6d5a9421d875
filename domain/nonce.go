package domain

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"time"
)

// NonceTTL is how long a sign-in nonce stays valid (SPEC §3).
const NonceTTL = 10 * time.Minute

// Nonce is a server-issued single-use value. The app gives Apple SHA-256(raw) and sends us the raw
// value; we store only the hash and consume it on sign-in, so a captured identity token cannot be
// replayed.
type Nonce struct {
	Hash      TokenHash
	ExpiresAt time.Time
}

// AppleNonceClaim is what the identity token's nonce claim must equal for a raw nonce: lowercase
// hex of SHA-256 (the Apple/Firebase convention).
func AppleNonceClaim(raw string) string {
	h := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(h[:])
}

// NonceMatches compares the token's nonce claim with the raw nonce in constant time.
func NonceMatches(claim, raw string) bool {
	want := AppleNonceClaim(raw)
	return subtle.ConstantTimeCompare([]byte(claim), []byte(want)) == 1
}
