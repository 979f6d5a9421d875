// Package keys holds the key-management use cases for secrets at rest: a report of which key
// version protects how many stored secrets, rotation, the rewrap job that moves every stored
// secret to the latest version, and retirement of old versions once nothing uses them. The admin
// API and betterkeyctl drive it in the order of the rotation runbook: rotate, rewrap, report,
// retire.
package keys

import (
	"context"
	"fmt"
	"slices"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// ErrKeyVersionInUse refuses to retire key versions that still protect stored secrets: those
// secrets would stop opening. The operator runs the rewrap job first.
var ErrKeyVersionInUse = &domain.Error{
	Kind: domain.KindFailedPrecondition, Code: "KEY_VERSION_IN_USE",
	Msg: "stored secrets are still sealed under a key version to retire; rewrap them first",
}

// Deps are the ports the key-management use cases need. Keys and Cipher are normally one backend
// (the local keyring or Vault transit) under its two roles.
type Deps struct {
	Keys    ports.KeyManager
	Cipher  ports.TokenCipher
	Secrets ports.SealedSecretStore
}

// Service implements the key-management use cases. It is safe for concurrent use and keeps no
// state: a rewrap job's position lives in the store (what is still below the target version),
// so a job that stops, or runs on two replicas at once, is resumed or repeated without harm.
type Service struct {
	d Deps
}

// New returns the key-management service.
func New(d Deps) *Service { return &Service{d: d} }

// VersionUsage is how many stored secrets one key version protects.
type VersionUsage struct {
	Version int
	Secrets int
	// Retired means the version is below the minimum decryption version: secrets still sealed
	// under it no longer open.
	Retired bool
}

// Report describes the key and what it protects, so an operator can see whether a rewrap is due
// and whether old versions can be retired.
type Report struct {
	Latest        int
	MinDecryption int
	// Versions lists every version from MinDecryption to Latest and every other version that
	// still protects a secret, in ascending order.
	Versions []VersionUsage
}

// Report returns the key's versions and how many stored secrets each protects.
func (s *Service) Report(ctx context.Context) (Report, error) {
	kv, err := s.d.Keys.Versions(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("read key versions: %w", err)
	}
	counts, err := s.d.Secrets.KeyVersionCounts(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("count stored secrets: %w", err)
	}
	r := Report{Latest: kv.Latest, MinDecryption: kv.MinDecryption}
	for v := max(kv.MinDecryption, 1); v <= kv.Latest; v++ {
		r.Versions = append(r.Versions, VersionUsage{Version: v, Secrets: counts[v]})
	}
	for v, n := range counts {
		if n > 0 && (v < kv.MinDecryption || v > kv.Latest) {
			r.Versions = append(r.Versions, VersionUsage{Version: v, Secrets: n, Retired: v < kv.MinDecryption})
		}
	}
	slices.SortFunc(r.Versions, func(a, b VersionUsage) int { return a.Version - b.Version })
	return r, nil
}

// Rotate adds a key version, which every seal uses from then on, and returns its number. Secrets
// sealed under older versions keep opening until those versions are retired.
func (s *Service) Rotate(ctx context.Context) (int, error) {
	v, err := s.d.Keys.Rotate(ctx)
	if err != nil {
		return 0, fmt.Errorf("rotate key: %w", err)
	}
	return v, nil
}

// Retire makes versions below minVersion unusable for decryption. It refuses with
// ErrKeyVersionInUse while any stored secret is still sealed under such a version, since that
// secret would be lost, and with a KindInvalid error when minVersion is not between 1 and the
// latest version. Lowering the minimum again is allowed and re-admits older versions where the
// backend still holds them.
//
// The check and the retirement are two steps: a token set sealed before the last rotation and
// written only after the check would slip through. Rotation, rewrap and retirement are minutes
// apart in practice, far longer than any request that seals a token.
func (s *Service) Retire(ctx context.Context, minVersion int) error {
	kv, err := s.d.Keys.Versions(ctx)
	if err != nil {
		return fmt.Errorf("retire key versions: read key versions: %w", err)
	}
	if minVersion < 1 || minVersion > kv.Latest {
		return fmt.Errorf("retire key versions: %w", domain.Invalid("min_version", "must be between 1 and the latest key version"))
	}
	inUse, err := s.below(ctx, minVersion)
	if err != nil {
		return fmt.Errorf("retire key versions: %w", err)
	}
	if inUse > 0 {
		return fmt.Errorf("retire key versions below %d: %d stored secrets still use them: %w", minVersion, inUse, ErrKeyVersionInUse)
	}
	if err := s.d.Keys.Retire(ctx, minVersion); err != nil {
		return fmt.Errorf("retire key versions: %w", err)
	}
	return nil
}
