package vault_test

import (
	"strconv"
	"testing"

	"github.com/betterkey/backend/adapters/vault"
	"github.com/betterkey/backend/adapters/vault/vaulttest"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

var benchBinding = domain.SecretBinding{
	Purpose: "smartcar.token_set", UserID: "6f1c1d2e-7a44-4b5e-9c1a-0d2f3e4a5b6c", ConnectionID: "conn-0001",
}

// benchPlaintext is the size of a Smartcar token set.
var benchPlaintext = domain.NewSecret(string(make([]byte, 256)))

func benchCipher(b *testing.B) *vault.Cipher {
	addr, root, _ := vaulttest.Start(b)
	return newCipher(b, vault.Config{Addr: addr, Token: root, Key: vaulttest.Key})
}

func BenchmarkVaultSeal(b *testing.B) {
	c := benchCipher(b)
	for b.Loop() {
		if _, err := c.Seal(b.Context(), benchBinding, benchPlaintext); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVaultOpen(b *testing.B) {
	c := benchCipher(b)
	s, err := c.Seal(b.Context(), benchBinding, benchPlaintext)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := c.Open(b.Context(), benchBinding, s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVaultRewrap measures the rewrap job's throughput: one op is one batch call, and
// secrets/s is the figure to compare with the ≥5,000/s target.
func BenchmarkVaultRewrap(b *testing.B) {
	c := benchCipher(b)
	items := make([]ports.RewrapItem, 1000)
	for i := range items {
		bind := benchBinding
		bind.ConnectionID = "conn-" + strconv.Itoa(i)
		s, err := c.Seal(b.Context(), bind, benchPlaintext)
		if err != nil {
			b.Fatal(err)
		}
		items[i] = ports.RewrapItem{Binding: bind, Sealed: s}
	}
	if _, err := c.Rotate(b.Context()); err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{1, 10, 100, 250, 1000} {
		b.Run("batch="+strconv.Itoa(size), func(b *testing.B) {
			n := 0
			for b.Loop() {
				res, err := c.Rewrap(b.Context(), items[:size])
				if err != nil {
					b.Fatal(err)
				}
				if res[size-1].Err != nil {
					b.Fatal(res[size-1].Err)
				}
				n += size
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "secrets/s")
		})
	}
}
