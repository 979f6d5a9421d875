package domain

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// UserID identifies a BetterKey user. It is ours, never Apple's subject, so an Apple subject can be
// unlinked or migrated without rewriting every reference.
type UserID string

// SessionID identifies one app session (one install on one device).
type SessionID string

// NewUserID returns a fresh random user id.
func NewUserID() UserID { return UserID(newUUID()) }

// NewSessionID returns a fresh random session id.
func NewSessionID() SessionID { return SessionID(newUUID()) }

// newUUID returns a random RFC 9562 version-4 UUID in canonical text form.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error since Go 1.24
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ValidID reports whether s has the canonical UUID text shape; ids from URLs are checked with it so
// that garbage never reaches a store.
func ValidID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdef", c) {
				return false
			}
		}
	}
	return true
}
