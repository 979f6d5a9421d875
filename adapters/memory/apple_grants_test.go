package memory_test

import (
	"testing"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

func TestAppleGrantsContract(t *testing.T) {
	contract.AppleGrantStore(t, func(*testing.T) (ports.AppleGrantStore, ports.UserStore, ports.SealedSecretStore) {
		secrets, users := memory.NewSealedSecrets(), memory.NewUsers()
		return memory.NewAppleGrants(secrets, users), users, secrets
	})
}
