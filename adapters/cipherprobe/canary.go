// Package cipherprobe proves at startup and in readiness checks that a configured TokenCipher
// really encrypts, decrypts and binds: a wrong key name, a key without row binding or an
// unreachable backend must stop the server before it stores a single token (fail closed).
package cipherprobe

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Purpose is the binding purpose of canary values; no stored row uses it.
const Purpose = "betterkey.canary"

// ErrCanaryFailed means the cipher answered but misbehaved (a round trip changed the value, or a
// value opened under a wrong binding); the server must not start with it.
var ErrCanaryFailed = errors.New("cipher canary failed")

// Canary seals a random value, opens it, and opens it again under a wrong binding, which must
// fail with domain.ErrSealedSecretInvalid. Backend errors are returned wrapped as they came (so
// domain.ErrUnavailable stays visible); misbehaviour wraps ErrCanaryFailed.
func Canary(ctx context.Context, c ports.TokenCipher) error {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails since Go 1.24
	id := base64.RawURLEncoding.EncodeToString(nonce)
	b := domain.SecretBinding{Purpose: Purpose, UserID: domain.UserID("canary-" + id), ConnectionID: id}
	want := domain.NewOpaqueToken()

	sealed, err := c.Seal(ctx, b, want)
	if err != nil {
		return fmt.Errorf("canary seal: %w", err)
	}
	got, err := c.Open(ctx, b, sealed)
	if err != nil {
		return fmt.Errorf("canary open: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(got.Reveal()), []byte(want.Reveal())) != 1 {
		return fmt.Errorf("canary open: round trip changed the value: %w", ErrCanaryFailed)
	}

	wrong := b
	wrong.ConnectionID += "-other"
	_, err = c.Open(ctx, wrong, sealed)
	switch {
	case err == nil:
		return fmt.Errorf("canary open: a wrong binding opened the value, the key does not bind rows: %w", ErrCanaryFailed)
	case errors.Is(err, domain.ErrSealedSecretInvalid):
		return nil
	default:
		return fmt.Errorf("canary open with wrong binding: %w", err)
	}
}
