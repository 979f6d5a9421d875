// Command load is BetterKey's load harness (`go tool task load`). It builds the production
// betterkeyd, starts it as a process of its own on a fresh PostgreSQL database with the Apple and
// Smartcar simulators served by the harness on loopback (or targets a development server with
// -base), seeds signed-in users with linked cars, and runs a fixed scenario per endpoint. Each
// scenario runs on the server and, where one exists, on the raw floor (net/http + pgx doing the
// same SQL and crypto), alternating; then come the overload scenario (3× the measured capacity,
// its promises asserted), 1,000 waiting long-polls and their release on drain, and the same load
// on 1, 2 and 3 replicas. It prints a markdown report and writes it as JSON. The exit status is
// non-zero when a promise of the overload or long-poll scenarios is broken.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"
)

type options struct {
	base      string
	admin     string
	dbURL     string
	duration  time.Duration
	warmup    time.Duration
	workers   int
	accounts  int
	only      *regexp.Regexp
	jsonPath  string
	overload  bool
	overloadX float64
	longPolls int
	replicas  int
	floor     bool
	rate      int
	serverEnv map[string]string
}

func main() {
	var o options
	only := flag.String("scenarios", "", "run only the scenarios whose name matches this regular expression")
	flag.StringVar(&o.base, "base", "", "target this running development server (with its built-in simulators) instead of starting one")
	flag.StringVar(&o.admin, "admin", "", "with -base: its admin listener, for the Connect scenario")
	flag.StringVar(&o.dbURL, "db", envOr("BETTERKEY_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL admin URL; the run creates and drops a database of its own")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "measured time per scenario")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured warm-up before each scenario")
	flag.IntVar(&o.workers, "workers", 32, "concurrent clients per scenario (closed loop)")
	flag.IntVar(&o.rate, "rate", 0, "requests per second per scenario (open loop) instead of -workers back to back")
	flag.IntVar(&o.accounts, "accounts", 100, "seeded users, each with two linked cars")
	flag.StringVar(&o.jsonPath, "json", "load-report.json", "write the report here as JSON (empty: do not)")
	flag.BoolVar(&o.floor, "floor", true, "run the raw floor alternating with the server and print the ratio")
	flag.BoolVar(&o.overload, "overload", true, "run the overload scenario")
	flag.Float64Var(&o.overloadX, "overload-factor", 3, "the overload scenario's arrival rate, as a multiple of the measured capacity")
	flag.IntVar(&o.longPolls, "long-polls", 1000, "concurrent command-status long-polls for the memory scenario (0: skip)")
	flag.IntVar(&o.replicas, "replicas", 3, "measure 1 … this many replicas on the one database (1: skip)")
	flag.Func("server-env", "K=V: an extra BETTERKEY_* setting for the servers the harness starts (repeatable), e.g. to try admission limits", func(kv string) error {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("want K=V")
		}
		if o.serverEnv == nil {
			o.serverEnv = map[string]string{}
		}
		o.serverEnv[k] = v
		return nil
	})
	flag.Parse()
	if *only != "" {
		o.only = regexp.MustCompile(*only)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	rep, err := run(ctx, o)
	if rep != nil {
		fmt.Print(rep.markdown())
		if o.jsonPath != "" {
			if b, jerr := json.MarshalIndent(rep, "", "  "); jerr == nil {
				_ = os.WriteFile(o.jsonPath, append(b, '\n'), 0o644)
				fmt.Printf("\nJSON: %s\n", o.jsonPath)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	if rep != nil && rep.broken() {
		fmt.Fprintln(os.Stderr, "load: a promise was broken (see FAIL above)")
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
