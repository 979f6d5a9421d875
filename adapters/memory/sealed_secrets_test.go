package memory_test

import (
	"testing"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

func TestSealedSecretsContract(t *testing.T) {
	contract.SealedSecretStore(t, func(*testing.T) (ports.SealedSecretStore, ports.ConnectionStore, ports.UserStore) {
		secrets := memory.NewSealedSecrets()
		return secrets, memory.NewConnections(secrets), memory.NewUsers()
	})
}

func TestSigningKeysContract(t *testing.T) {
	secrets := memory.NewSealedSecrets()
	contract.SigningKeyStore(t, memory.NewSigningKeys(secrets), secrets)
}
