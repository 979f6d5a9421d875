// Package command holds the lock and unlock use cases: submission (ownership, a usable link, the
// per-user rate limit, idempotency and the one-in-flight-per-vehicle guard), the worker that sends
// admitted commands through the vehicle link and records how each ended, the long-poll read, and
// the history.
package command

import (
	"context"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Access runs fn with a usable access token of a connection, refreshing once across replicas
// and marking dead grants; vehiclelink.Service implements it, so every upstream call for a
// connection follows one refresh discipline.
type Access interface {
	WithAccess(ctx context.Context, id domain.ConnectionID, fn func(domain.VehicleGrant) error) error
}

// Config tunes commands; zero values take the defaults.
type Config struct {
	// TTL is how long an accepted command may wait to be sent (default 30 s, SPEC §5).
	TTL time.Duration
	// Lease is how long a dispatched command's guard lasts without renewal (default 20 s). The
	// worker renews it every Lease/4 while it waits for the upstream, so it bounds how long a
	// crashed process can keep a vehicle locked out, not how long a command may take.
	Lease time.Duration
	// MaxExecution bounds one command's upstream sending, retries included (default 310 s, the
	// Smartcar SDKs' timeout); past it the outcome is unknown.
	MaxExecution time.Duration
	// MaxWait caps a long-poll (default 20 s); PollInterval is how often it re-reads the store
	// for commands other replicas run (default 250 ms).
	MaxWait      time.Duration
	PollInterval time.Duration
	// LockLimit and UnlockLimit are the per-user rate limits; unlock is the stricter one
	// (defaults 30 and 10 per 10 minutes). A negative Max disables a limit.
	LockLimit   ports.CommandRateLimit
	UnlockLimit ports.CommandRateLimit
	// MaxAttempts bounds sends of one command that provably did not reach the upstream
	// (default 3); RetryBackoff is the wait before the second, doubled before each next one
	// (default 500 ms). Retries never start past the TTL.
	MaxAttempts  int
	RetryBackoff time.Duration
	// Concurrency is how many commands one process sends at once (default 128).
	Concurrency int
	// ClaimInterval is how often the worker sweeps abandoned commands and claims accepted ones
	// another process admitted but did not send (default 1 s); ClaimGrace is how old an accepted
	// command must be before any process may claim it (default 2 s), which leaves it to the
	// process that admitted it while that one lives.
	ClaimInterval time.Duration
	ClaimGrace    time.Duration
	// FinishTimeout bounds recording an outcome, which runs even while the process stops
	// (default 5 s).
	FinishTimeout time.Duration
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.TTL, domain.DefaultCommandTTL)
	def(&c.Lease, 20*time.Second)
	def(&c.MaxExecution, 310*time.Second)
	def(&c.MaxWait, 20*time.Second)
	def(&c.PollInterval, 250*time.Millisecond)
	def(&c.RetryBackoff, 500*time.Millisecond)
	def(&c.ClaimInterval, time.Second)
	def(&c.ClaimGrace, 2*time.Second)
	def(&c.FinishTimeout, 5*time.Second)
	if c.LockLimit == (ports.CommandRateLimit{}) {
		c.LockLimit = ports.CommandRateLimit{Window: 10 * time.Minute, Max: 30}
	}
	if c.UnlockLimit == (ports.CommandRateLimit{}) {
		c.UnlockLimit = ports.CommandRateLimit{Window: 10 * time.Minute, Max: 10}
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 128
	}
	return c
}

// Deps are the ports the command use cases need.
type Deps struct {
	Commands    ports.CommandStore
	Connections ports.ConnectionStore
	Sessions    ports.SessionStore
	API         ports.VehicleAPI
	Access      Access
	// Observer hears lifecycle events for metrics; nil means nobody listens.
	Observer ports.CommandObserver
	// Report receives failures of background work (store unavailable, an outcome that could not
	// be recorded), which have no caller to return to; nil drops them.
	Report func(op string, err error)
}

// Service implements the command use cases. It is safe for concurrent use and every coordination
// point lives in the store, so any number of replicas may run it; what it keeps in memory (the
// queue of commands it admitted, the waiters to wake) only makes it faster.
type Service struct {
	d       Deps
	cfg     Config
	now     func() time.Time
	queue   chan domain.CommandID
	waiters *waiters
}

// New returns the service; start a Worker to send what it admits.
func New(d Deps, cfg Config) *Service {
	if d.Observer == nil {
		d.Observer = nopObserver{}
	}
	if d.Report == nil {
		d.Report = func(string, error) {}
	}
	cfg = cfg.withDefaults()
	return &Service{d: d, cfg: cfg, now: time.Now, queue: make(chan domain.CommandID, 4*cfg.Concurrency), waiters: newWaiters()}
}

// WithClock returns a copy reading time from now, for tests; it shares the original's queue and
// waiters.
func (s *Service) WithClock(now func() time.Time) *Service {
	c := *s
	c.now = now
	return &c
}

// Config reports the settings in effect, defaults applied.
func (s *Service) Config() Config { return s.cfg }

// limitFor is the rate limit of an action.
func (s *Service) limitFor(a domain.CommandAction) ports.CommandRateLimit {
	l := s.cfg.LockLimit
	if a == domain.CommandUnlock {
		l = s.cfg.UnlockLimit
	}
	if l.Max < 0 {
		return ports.CommandRateLimit{}
	}
	return l
}

// enqueue hands an admitted command to this process's worker without blocking; when the queue is
// full the command waits for a claim (ClaimGrace) instead.
func (s *Service) enqueue(id domain.CommandID) {
	select {
	case s.queue <- id:
	default:
	}
}

// nopObserver is the Observer of a service nobody watches.
type nopObserver struct{}

func (nopObserver) Admitted(domain.Command)              {}
func (nopObserver) Refused(domain.CommandAction, string) {}
func (nopObserver) Executing(int)                        {}
func (nopObserver) Finished(domain.Command)              {}
