package cipherprobe_test

import (
	"context"
	"errors"
	"testing"

	"github.com/betterkey/backend/adapters/cipherprobe"
	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/domain"
)

func TestCanaryPassesForABindingCipher(t *testing.T) {
	if err := cipherprobe.Canary(t.Context(), memory.NewCipher()); err != nil {
		t.Fatalf("Canary: %v", err)
	}
}

// unbound opens every value with the binding it was sealed under, as a key without row binding
// would (e.g. a non-derived transit key).
type unbound struct {
	*memory.Cipher
	sealedFor domain.SecretBinding
}

func (u *unbound) Seal(ctx context.Context, b domain.SecretBinding, p domain.Secret) (domain.SealedSecret, error) {
	u.sealedFor = b
	return u.Cipher.Seal(ctx, b, p)
}

func (u *unbound) Open(ctx context.Context, _ domain.SecretBinding, s domain.SealedSecret) (domain.Secret, error) {
	return u.Cipher.Open(ctx, u.sealedFor, s)
}

func TestCanaryCatchesACipherThatDoesNotBind(t *testing.T) {
	err := cipherprobe.Canary(t.Context(), &unbound{Cipher: memory.NewCipher()})
	if !errors.Is(err, cipherprobe.ErrCanaryFailed) {
		t.Fatalf("Canary of a cipher that ignores bindings: got %v, want ErrCanaryFailed", err)
	}
}

// garbling returns a different plaintext than it sealed.
type garbling struct{ *memory.Cipher }

func (g garbling) Open(context.Context, domain.SecretBinding, domain.SealedSecret) (domain.Secret, error) {
	return domain.NewSecret("something else"), nil
}

func TestCanaryCatchesAWrongRoundTrip(t *testing.T) {
	err := cipherprobe.Canary(t.Context(), garbling{memory.NewCipher()})
	if !errors.Is(err, cipherprobe.ErrCanaryFailed) {
		t.Fatalf("Canary of a garbling cipher: got %v, want ErrCanaryFailed", err)
	}
}

// down fails like an unreachable backend.
type down struct{ *memory.Cipher }

func (down) Seal(context.Context, domain.SecretBinding, domain.Secret) (domain.SealedSecret, error) {
	return domain.SealedSecret{}, domain.ErrUnavailable
}

func TestCanaryPassesUnavailabilityThrough(t *testing.T) {
	err := cipherprobe.Canary(t.Context(), down{memory.NewCipher()})
	if !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Canary of an unreachable cipher: got %v, want domain.ErrUnavailable", err)
	}
}
