package keyring

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Rotate implements ports.KeyManager: it appends a fresh key version and rewrites the file
// before the new version is used, so a crash never leaves values sealed under a lost key.
func (k *Keyring) Rotate(_ context.Context) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v := k.state.latest() + 1
	key, raw := newKey(v, time.Now())
	aead, err := newAEAD(raw)
	if err != nil {
		return 0, fmt.Errorf("rotate key: %w", err)
	}
	fd := k.state.file
	fd.Keys = append(slices.Clip(fd.Keys), key)
	if err := writeFile(k.path, fd); err != nil {
		return 0, fmt.Errorf("rotate key: write keyring: %w", err)
	}
	k.state.file = fd
	k.state.aeads = append(k.state.aeads, aead)
	return v, nil
}

// Versions implements ports.KeyManager.
func (k *Keyring) Versions(_ context.Context) (ports.KeyVersions, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return ports.KeyVersions{Latest: k.state.latest(), MinDecryption: k.state.minDecryption}, nil
}

// Retire implements ports.KeyManager. Retired keys stay in the file, so lowering the minimum
// again re-admits them.
func (k *Keyring) Retire(_ context.Context, minDecryptionVersion int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if minDecryptionVersion < 1 || minDecryptionVersion > k.state.latest() {
		return fmt.Errorf("retire key versions: %w",
			domain.Invalid("min_decryption_version", "must be between 1 and the latest key version"))
	}
	fd := k.state.file
	fd.MinDecryptionVersion = minDecryptionVersion
	if err := writeFile(k.path, fd); err != nil {
		return fmt.Errorf("retire key versions: write keyring: %w", err)
	}
	k.state.file = fd
	k.state.minDecryption = minDecryptionVersion
	return nil
}
