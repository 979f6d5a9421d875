// Command betterkeyd is the BetterKey backend server. `betterkeyd` serves; `betterkeyd migrate`
// applies the database migrations and exits. Configuration comes from BETTERKEY_* variables.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/sessiontoken"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
	"github.com/betterkey/backend/cmd/betterkeyd/wiring"
)

func main() {
	cfg, err := config.Load(os.Getenv, sessiontoken.GenerateKey)
	if err != nil {
		fmt.Fprintf(os.Stderr, "betterkeyd: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	log := wiring.NewLogger(cfg, os.Stderr)
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		if err := migrate(cfg); err != nil {
			log.Error("migrate failed", "error", err.Error())
			os.Exit(1)
		}
		return
	}
	attrs := []any{}
	for _, kv := range cfg.Fields() {
		attrs = append(attrs, kv[0], kv[1])
	}
	log.Info("starting betterkeyd", attrs...)
	if cfg.GeneratedSigningKey() {
		log.Warn("no BETTERKEY_SESSION_SIGNING_KEY: using a throwaway key, access tokens end with this process")
	}
	if err := wiring.Run(cfg, log); err != nil {
		log.Error("betterkeyd stopped", "error", err.Error())
		os.Exit(1)
	}
}

func migrate(cfg config.Config) error {
	ctx := context.Background()
	db, err := postgres.Open(ctx, cfg.DatabaseURL.Reveal(), postgres.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	return postgres.Migrate(ctx, db)
}
