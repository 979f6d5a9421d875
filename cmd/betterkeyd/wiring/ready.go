package wiring

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/betterkey/backend/adapters/cipherprobe"
	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// readyFor is how long a passed readiness check stands. With Vault the check is a seal and two
// opens; caching it keeps a fleet of load-balancer probes off Vault, while a failure is never
// cached, so a recovery shows at the next probe.
const readyFor = 2 * time.Second

// readiness reports whether the replica takes traffic: it is not draining, the database answers
// and the cipher still seals, opens and binds. A drain fails it at once, whatever was cached.
// Each check sets betterkey_dependency_up, so a dashboard shows which dependency failed.
func readiness(db *postgres.DB, c ports.TokenCipher, d *Drain, reg prometheus.Registerer) (func(context.Context) error, error) {
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "betterkey", Name: "dependency_up",
		Help: "1 when the dependency passed this replica's last readiness check, 0 when it failed."}, []string{"dependency"})
	if err := reg.Register(up); err != nil {
		return nil, err
	}
	set := func(dep string, err error) error {
		v := 1.0
		if err != nil {
			v = 0
		}
		up.WithLabelValues(dep).Set(v)
		return err
	}
	deps := cachedPass(readyFor, time.Now, func(ctx context.Context) error {
		if err := set("database", db.Ping(ctx)); err != nil {
			return errors.Join(domain.ErrUnavailable, err)
		}
		return set("cipher", cipherprobe.Canary(ctx, c))
	})
	return func(ctx context.Context) error {
		if d.Draining() {
			return errDraining
		}
		return deps(ctx)
	}, nil
}

// cachedPass runs check at most once at a time and reuses a pass for ttl; concurrent callers wait
// for the check in progress rather than starting their own.
func cachedPass(ttl time.Duration, now func() time.Time, check func(context.Context) error) func(context.Context) error {
	var (
		mu         sync.Mutex
		passedTill time.Time
	)
	return func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if now().Before(passedTill) {
			return nil
		}
		if err := check(ctx); err != nil {
			return err
		}
		passedTill = now().Add(ttl)
		return nil
	}
}
