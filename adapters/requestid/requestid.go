// Package requestid is the one rule for request ids, shared by the REST and Connect transports so
// one id spans proxy, server and CLI whichever door a request came through.
package requestid

import (
	"crypto/rand"
	"encoding/hex"
)

// Header carries the request id both ways.
const Header = "X-Request-Id"

// Adopt returns incoming when it is well formed, or a fresh random id.
func Adopt(incoming string) string {
	if sane(incoming) {
		return incoming
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

// sane reports whether s is short and of a charset that cannot forge log structure.
func sane(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
