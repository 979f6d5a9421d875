package wiring

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.uber.org/fx"

	"github.com/betterkey/backend/adapters/cipherprobe"
	"github.com/betterkey/backend/adapters/keyring"
	"github.com/betterkey/backend/adapters/vault"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
	"github.com/betterkey/backend/ports"
)

// cipherOut provides one backend under both of its roles.
type cipherOut struct {
	fx.Out
	Cipher ports.TokenCipher
	Keys   ports.KeyManager
}

// canaryTimeout bounds the startup proof of the cipher; a backend that cannot answer in time is
// as good as absent.
const canaryTimeout = 10 * time.Second

// newCipher opens the configured secrets-at-rest backend and proves it with a canary (seal, open,
// open under a wrong binding, which must fail) before anything can store a token: a missing,
// wrong or unreachable backend stops the server (fail closed).
func newCipher(lc fx.Lifecycle, cfg config.Config, log *slog.Logger) (cipherOut, error) {
	ctx, cancel := context.WithTimeout(context.Background(), canaryTimeout)
	defer cancel()
	var (
		c interface {
			ports.TokenCipher
			ports.KeyManager
		}
		name string
	)
	switch {
	case cfg.KeyringFile != "":
		if cfg.Env != config.Development {
			return cipherOut{}, fmt.Errorf("local keyring refused in %s", cfg.Env)
		}
		k, err := keyring.Open(cfg.KeyringFile, true)
		if err != nil {
			return cipherOut{}, fmt.Errorf("open local keyring: %w", err)
		}
		c, name = k, "local keyring"
	default:
		v, err := vault.New(ctx, vault.Config{
			Addr: cfg.VaultAddr, Token: cfg.VaultToken, RoleID: cfg.VaultRoleID, SecretID: cfg.VaultSecretID,
			Mount: cfg.VaultMount, Key: cfg.VaultTransitKey,
		}, log)
		if err != nil {
			return cipherOut{}, fmt.Errorf("connect to vault transit: %w", err)
		}
		lc.Append(fx.StopHook(v.Close))
		c, name = v, "vault transit"
	}
	if err := cipherprobe.Canary(ctx, c); err != nil {
		return cipherOut{}, fmt.Errorf("%s canary: %w", name, err)
	}
	log.Info("secrets at rest ready", slog.String("backend", name))
	return cipherOut{Cipher: c, Keys: c}, nil
}
