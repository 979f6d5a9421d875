// Command betterkeyctl is the support and operations CLI for the BetterKey admin API. It talks
// Connect (or gRPC, gRPC-Web) to the admin address and reads its bearer token from an environment
// variable, so the token never appears in a process list or shell history.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "betterkeyctl:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
