package smartcar

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// MaxWebhookSecrets is how many management tokens may sign deliveries at once: the current one
// and, during a rotation, the one before it.
const MaxWebhookSecrets = 2

// signatureLen is the length of SC-Signature: lowercase hex of a SHA-256 HMAC.
const signatureLen = 2 * sha256.Size

// Webhooks implements ports.VehicleEvents for Smartcar's signed webhook deliveries (reference
// §4): SC-Signature is the lowercase hex HMAC-SHA256 of the raw body keyed with the Application
// Management Token, and VERIFY challenges are answered with the same HMAC of the challenge. It is
// safe for concurrent use.
type Webhooks struct {
	keys [][]byte // current first
}

var _ ports.VehicleEvents = (*Webhooks)(nil)

// NewWebhooks takes the active management tokens, current first; one or two, none empty. The
// tokens are copied out of their Secrets once, here, and never leave the value.
func NewWebhooks(secrets []domain.Secret) (*Webhooks, error) {
	if len(secrets) == 0 || len(secrets) > MaxWebhookSecrets {
		return nil, fmt.Errorf("create smartcar webhooks: want 1 or %d management tokens, got %d", MaxWebhookSecrets, len(secrets))
	}
	w := &Webhooks{}
	for _, s := range secrets {
		if s.Empty() {
			return nil, errors.New("create smartcar webhooks: a management token is empty")
		}
		w.keys = append(w.keys, []byte(s.Reveal()))
	}
	return w, nil
}

// errSignature is the one rejection Authenticate returns: it names no part of the signature, the
// body or the keys, and does not say which check failed.
var errSignature = fmt.Errorf("verify webhook signature: %w", domain.ErrWebhookSignature)

// Authenticate implements ports.VehicleEvents. Only the exact form Smartcar sends is accepted:
// 64 lowercase hex digits, nothing around them; uppercase or truncated hex is a mismatch. Every
// active key is tried, each compared in constant time with hmac.Equal, and the loop does not stop
// at a match, so timing says nothing about which key (if any) matched.
func (w *Webhooks) Authenticate(body []byte, signature string) error {
	if !lowerHex(signature, signatureLen) {
		return errSignature
	}
	got := []byte(signature)
	ok := false
	for _, k := range w.keys {
		if hmac.Equal(sign(k, body), got) {
			ok = true
		}
	}
	if !ok {
		return errSignature
	}
	return nil
}

// AnswerChallenge implements ports.VehicleEvents with the current key.
func (w *Webhooks) AnswerChallenge(challenge string) string {
	return string(sign(w.keys[0], []byte(challenge)))
}

// sign returns the lowercase hex HMAC-SHA256 of msg under key.
func sign(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	_, _ = m.Write(msg) // hash writes never fail
	return hex.AppendEncode(nil, m.Sum(nil))
}

// lowerHex reports whether s is exactly n lowercase hex digits.
func lowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
