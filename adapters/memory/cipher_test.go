package memory_test

import (
	"testing"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

func TestCipherContract(t *testing.T) {
	contract.TokenCipher(t, func(*testing.T) (ports.TokenCipher, ports.KeyManager) {
		c := memory.NewCipher()
		return c, c
	})
}

func BenchmarkCipherSeal(b *testing.B) {
	c := memory.NewCipher()
	bind := domain.SecretBinding{Purpose: "smartcar.token_set", UserID: "u", ConnectionID: "c"}
	pt := domain.NewSecret(string(make([]byte, 256)))
	b.SetBytes(256)
	for b.Loop() {
		if _, err := c.Seal(b.Context(), bind, pt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCipherOpen(b *testing.B) {
	c := memory.NewCipher()
	bind := domain.SecretBinding{Purpose: "smartcar.token_set", UserID: "u", ConnectionID: "c"}
	s, err := c.Seal(b.Context(), bind, domain.NewSecret(string(make([]byte, 256))))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(256)
	for b.Loop() {
		if _, err := c.Open(b.Context(), bind, s); err != nil {
			b.Fatal(err)
		}
	}
}
