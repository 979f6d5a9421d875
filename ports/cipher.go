package ports

import (
	"context"

	"github.com/betterkey/backend/domain"
)

// TokenCipher encrypts the upstream tokens the service keeps at rest (Smartcar token sets, Apple
// refresh tokens) with AES-256-GCM, a fresh random nonce per seal and a key-version tag, bound to
// the row that stores them. Implementations are safe for concurrent use and fail closed: no
// method ever returns a plaintext it could not authenticate, and no error carries a plaintext,
// a ciphertext or key material.
//
// Error contract, shared by every method:
//   - a binding that does not name a row (empty purpose or user): a KindInvalid *domain.Error;
//   - a sealed value that is malformed, tampered with, bound to another row, sealed by another
//     backend or under a retired or unknown key version: wraps domain.ErrSealedSecretInvalid;
//   - the key backend unreachable, sealed, or refusing our credentials: wraps
//     domain.ErrUnavailable, so transports answer 503 and the caller may retry later.
type TokenCipher interface {
	// Seal encrypts plaintext under the latest key version, bound to b. An empty plaintext is
	// refused with an error wrapping domain.ErrEmptySecret. Sealing the same plaintext twice
	// yields different ciphertexts.
	Seal(ctx context.Context, b domain.SecretBinding, plaintext domain.Secret) (domain.SealedSecret, error)
	// Open decrypts a value sealed by this backend for exactly the binding b, under any key
	// version from the minimum decryption version up to the latest.
	Open(ctx context.Context, b domain.SecretBinding, s domain.SealedSecret) (domain.Secret, error)
	// Rewrap re-seals each item under the latest key version, keeping its binding, without the
	// plaintext reaching the caller; it is what the rewrap job runs before an old version is
	// retired. Results come in input order, one per item. The call's error is for failures of the
	// whole batch (backend unavailable); a single item that cannot be opened gets its own Err
	// (wrapping domain.ErrSealedSecretInvalid) while the others are still rewrapped. Items
	// already at the latest version are re-sealed too (with a fresh nonce).
	Rewrap(ctx context.Context, items []RewrapItem) ([]RewrapResult, error)
}

// RewrapItem is one stored secret with the binding of the row that holds it.
type RewrapItem struct {
	Binding domain.SecretBinding
	Sealed  domain.SealedSecret
}

// RewrapResult is the outcome for one RewrapItem: either Sealed (under the latest version) or Err.
type RewrapResult struct {
	Sealed domain.SealedSecret
	Err    error
}

// KeyVersions describes a key's lifecycle: new seals use Latest; values sealed under a version
// below MinDecryption are retired and no longer open.
type KeyVersions struct {
	Latest        int
	MinDecryption int
}

// KeyManager rotates and retires the versions of the key a TokenCipher uses; the admin API and the
// rotation runbook drive it (rotate, rewrap every row, then retire). Implementations are safe for
// concurrent use and follow TokenCipher's error contract for unavailability.
type KeyManager interface {
	// Rotate adds a key version, which new seals use from then on, and returns its number. Values
	// sealed under older versions keep opening.
	Rotate(ctx context.Context) (int, error)
	// Versions reports the latest and the minimum decryption version.
	Versions(ctx context.Context) (KeyVersions, error)
	// Retire sets the minimum decryption version: values sealed under an older version then fail
	// to open (and to rewrap) with domain.ErrSealedSecretInvalid. It must lie between 1 and the
	// latest version, else a KindInvalid error is returned; lowering it again re-admits the
	// older versions, as an emergency lever, where the backend still holds them.
	Retire(ctx context.Context, minDecryptionVersion int) error
}
