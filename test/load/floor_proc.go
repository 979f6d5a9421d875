package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/betterkey/backend/test/load/floor"
)

// floorEnv makes the harness's own binary serve the raw floor instead (the harness starts it so),
// so the floor is a process of its own like the server, with CPU and memory of its own.
const floorEnv = "BETTERKEY_LOAD_FLOOR_ADDR"

func init() {
	addr := os.Getenv(floorEnv)
	if addr == "" {
		return
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	err := floor.Serve(ctx, floor.Config{Addr: addr, DatabaseURL: os.Getenv("BETTERKEY_DATABASE_URL"),
		SigningKey: os.Getenv("BETTERKEY_SESSION_SIGNING_KEY"), WebhookSecret: os.Getenv("BETTERKEY_SMARTCAR_WEBHOOK_SECRETS"), MaxConns: 20})
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// startFloor starts the floor on the run's database and returns a fixture aimed at it, sharing
// the seeded accounts and the refresh sessions with the server's.
func (h *harness) startFloor(ctx context.Context) (*fixture, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	vars := map[string]string{floorEnv: addr, "BETTERKEY_HTTP_ADDR": addr, "BETTERKEY_ADMIN_ADDR": addr,
		"BETTERKEY_DATABASE_URL": h.db.url, "BETTERKEY_SESSION_SIGNING_KEY": h.signingKey,
		"BETTERKEY_SMARTCAR_WEBHOOK_SECRETS": h.sims.managementToken}
	r, err := startReplica(ctx, self, h.dir, vars)
	if err != nil {
		return nil, err
	}
	h.floor = r
	return h.f.aimedAt([]string{r.base}), nil
}
