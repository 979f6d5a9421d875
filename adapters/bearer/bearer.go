// Package bearer reads the bearer credential of a request (RFC 6750 §2.1) by one rule for every
// transport: the REST API's access tokens and the admin API's tokens are parsed alike.
package bearer

import (
	"errors"
	"net/http"
	"strings"
)

// MaxHeader bounds the Authorization header: an access token is under 1 KiB, and a longer header
// is refused before any work is done on it.
const MaxHeader = 4096

// Sentinels of Token; callers map both to their transport's "unauthenticated".
var (
	// ErrMissing: the request has no Authorization header.
	ErrMissing = errors.New("no authorization header")
	// ErrMalformed: more than one header, too long, another scheme, or not a token68 credential.
	ErrMalformed = errors.New("not a single bearer credential")
)

// Token returns the request's bearer credential: exactly one Authorization header of at most
// MaxHeader bytes, the scheme "Bearer" in any case (RFC 9110 §11.1), exactly one space, and a
// non-empty token68 (letters, digits, "-._~+/", then any "=" padding).
func Token(h http.Header) (string, error) {
	values := h.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", ErrMissing
	case len(values) > 1 || len(values[0]) > MaxHeader:
		return "", ErrMalformed
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || !token68(token) {
		return "", ErrMalformed
	}
	return token, nil
}

// Valid reports whether s can travel as a bearer credential (token68); configuration checks the
// admin tokens with it, so that no configured token is one the parser refuses.
func Valid(s string) bool { return token68(s) }

func token68(s string) bool {
	if s == "" {
		return false
	}
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
