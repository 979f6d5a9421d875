package wiring

import (
	"github.com/betterkey/backend/app/keys"
	"github.com/betterkey/backend/ports"
)

// newKeys provides the key-management use cases (rotate, rewrap, report, retire) over the same
// cipher backend the rest of the server seals with, so the admin API rotates the key in use.
func newKeys(km ports.KeyManager, c ports.TokenCipher, secrets ports.SealedSecretStore) *keys.Service {
	return keys.New(keys.Deps{Keys: km, Cipher: c, Secrets: secrets})
}
