package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/betterkey/backend/domain"
)

// classify turns a vault/api error into the port's error contract. Vault's own messages are
// kept (they name the failure, never the data) but the raw response error is not wrapped, so no
// request body or header can travel up. openingCiphertext says a 400 means the ciphertext or its
// binding was refused (decrypt, rewrap) rather than a bug in our request (encrypt).
func classify(op string, err error, openingCiphertext bool) error {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		// Transport failures: refused connection, DNS, TLS, timeouts, exhausted retries.
		return fmt.Errorf("%s: vault unreachable: %w: %w", op, domain.ErrUnavailable, err)
	}
	msg := vaultMessage(re)
	switch {
	case re.StatusCode == http.StatusBadRequest && strings.Contains(msg, "key not found"):
		return fmt.Errorf("%s: vault transit key not found: %s", op, msg)
	case re.StatusCode == http.StatusBadRequest && openingCiphertext:
		return fmt.Errorf("%s: vault refused the ciphertext: %s: %w", op, msg, domain.ErrSealedSecretInvalid)
	case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
		// Expired or revoked token, or a policy that lacks the path: unusable until fixed.
		return fmt.Errorf("%s: vault denied the request (HTTP %d): %s: %w", op, re.StatusCode, msg, domain.ErrUnavailable)
	case re.StatusCode == http.StatusTooManyRequests || re.StatusCode == http.StatusPreconditionFailed ||
		re.StatusCode >= 500:
		return fmt.Errorf("%s: vault unavailable (HTTP %d): %s: %w", op, re.StatusCode, msg, domain.ErrUnavailable)
	default:
		return fmt.Errorf("%s: vault answered HTTP %d: %s", op, re.StatusCode, msg)
	}
}

// vaultMessage joins Vault's error strings, shortened so a log line stays a line.
func vaultMessage(re *api.ResponseError) string {
	msg := strings.Join(re.Errors, "; ")
	if msg == "" {
		msg = "no error message"
	}
	const maxLen = 200
	if len(msg) > maxLen {
		msg = msg[:maxLen] + "..."
	}
	return msg
}

// asInt reads a JSON number from an api.Secret (the client decodes with UseNumber).
func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return int(i), err == nil
	case int:
		return n, true
	case float64:
		return int(n), n == float64(int(n))
	default:
		return 0, false
	}
}
