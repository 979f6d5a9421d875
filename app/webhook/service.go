// Package webhook holds the use cases of pushed events: Smartcar webhooks (signed deliveries of
// vehicle state and errors) and Apple server-to-server notifications (consent revoked, account
// deleted). Every delivery is authenticated before anything else, stored in an inbox keyed by
// the sender's event id before the sender gets its 2xx, and processed by a worker that any
// replica may run, idempotently, so at-least-once and out-of-order deliveries change state once
// and never backwards.
package webhook

import (
	"context"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Config tunes the inbox worker; zero values take the defaults.
type Config struct {
	// Batch is how many events one claim takes.
	Batch int
	// Workers is how many of a batch's partitions (one per car) a replica processes at once.
	Workers int
	// PollInterval is how often the worker looks for events that other replicas stored, that
	// were released for a retry, or whose lease ran out. Events stored by this replica wake it
	// at once.
	PollInterval time.Duration
	// Lease is how long a claimed event stays with its worker; one whose worker died goes to
	// another after it.
	Lease time.Duration
	// MaxAttempts is after how many failed attempts an event is given up (status failed).
	MaxAttempts int
	// RetryBase and RetryMax bound the exponential backoff between attempts.
	RetryBase, RetryMax time.Duration
	// ForceLocalDeleteAfter is after how many attempts an account deletion deletes the owner's
	// vehicle connections even when Smartcar could not be told: erasure must not wait on an
	// upstream forever.
	ForceLocalDeleteAfter int
	// ForceAppleAfter is the same for Sign in with Apple grants Apple could not revoke. It is
	// later, because revoking is what App Store guideline 5.1.1(v) asks for; the default is the
	// last attempt before the job is given up (about 2.5 hours of retries).
	ForceAppleAfter int
	// MaxClockSkew is how far in the future a lock observation may claim to be; a later one
	// would pin the status against every honest observation and is ignored.
	MaxClockSkew time.Duration
	// InlineTimeout bounds processing an Apple notification inside its request.
	InlineTimeout time.Duration
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 12
	}
	if c.ForceLocalDeleteAfter <= 0 {
		c.ForceLocalDeleteAfter = 6
	}
	if c.ForceAppleAfter <= 0 {
		c.ForceAppleAfter = max(c.MaxAttempts-1, c.ForceLocalDeleteAfter)
	}
	def(&c.PollInterval, 2*time.Second)
	def(&c.Lease, 5*time.Minute)
	def(&c.RetryBase, 10*time.Second)
	def(&c.RetryMax, time.Hour)
	def(&c.MaxClockSkew, 5*time.Minute)
	def(&c.InlineTimeout, 30*time.Second)
	return c
}

// AccountDeleter erases an account, idempotently, revoking its sessions first; force names the
// upstreams it may go ahead without. ForgetAppleGrants drops the Apple refresh tokens obtained
// before the user revoked consent. The account service is one.
type AccountDeleter interface {
	Delete(ctx context.Context, user domain.UserID, force domain.ErasureForce) error
	ForgetAppleGrants(ctx context.Context, user domain.UserID, revokedAt time.Time) error
}

// Deps are the ports the webhook use cases need.
type Deps struct {
	Inbox         ports.WebhookInbox
	VehicleEvents ports.VehicleEvents
	Notifications ports.AppleNotificationVerifier
	Connections   ports.ConnectionStore
	Users         ports.UserStore
	Sessions      ports.SessionStore
	Accounts      AccountDeleter
	// Commands settles unknown lock and unlock commands from reported lock states; nil leaves
	// them unknown.
	Commands ports.CommandSettler
}

// Service implements the webhook use cases. It is safe for concurrent use; deduplication and
// work distribution live in the inbox, so any number of replicas may ingest and process.
type Service struct {
	d    Deps
	cfg  Config
	now  func() time.Time
	wake chan struct{}
}

// New returns the service.
func New(d Deps, cfg Config) *Service {
	return &Service{d: d, cfg: cfg.withDefaults(), now: time.Now, wake: make(chan struct{}, 1)}
}

// WithClock returns a copy reading time from now, for tests; it shares the original's wake-up
// signal.
func (s *Service) WithClock(now func() time.Time) *Service {
	c := *s
	c.now = now
	return &c
}

// Outcome is what became of a delivery or of an event's processing; metrics count by it.
type Outcome string

// Delivery outcomes: what the sender's request achieved.
const (
	// OutcomeStored: a new event is in the inbox (for Apple: and was processed in the request).
	OutcomeStored Outcome = "stored"
	// OutcomeDuplicate: the event was stored before; nothing changed.
	OutcomeDuplicate Outcome = "duplicate"
	// OutcomePoison: the signature held but the body is not an event; stored, never processed.
	OutcomePoison Outcome = "poison"
	// OutcomeVerify: a verify challenge was answered; nothing is stored.
	OutcomeVerify Outcome = "verify"
)

// Processing outcomes: what an event did.
const (
	OutcomeApplied         Outcome = "applied"          // a lock state was recorded
	OutcomeStale           Outcome = "stale"            // a newer observation was stored already
	OutcomeFuture          Outcome = "future"           // the observation claims to come from the future
	OutcomeUnknownVehicle  Outcome = "unknown_vehicle"  // no stored vehicle has that Smartcar id: dropped
	OutcomeMarked          Outcome = "marked"           // a connection was marked needs_reauth or revoked
	OutcomeIgnored         Outcome = "ignored"          // the event means nothing to BetterKey
	OutcomeMalformed       Outcome = "malformed"        // a stored event no longer decodes
	OutcomeSessionsRevoked Outcome = "sessions_revoked" // Apple consent revoked: every session ended
	OutcomeAccountDeleted  Outcome = "account_deleted"  // Apple account deleted: the account is gone
	OutcomeUnknownSubject  Outcome = "unknown_subject"  // no account has that Apple subject
	OutcomeRetry           Outcome = "retry"            // the attempt failed; the event waits for another
	OutcomeFailed          Outcome = "failed"           // the attempts are used up; operators look
)

// spent reports whether an event with this outcome did all its body can do, so the inbox may drop
// the body and keep only the key: what was applied or proved stale, a connection marked, an
// account's sessions or the account itself ended. A body that meant nothing yet (an unknown car
// that may be linked a moment later, a shape a fixed decoder may read, a claim from the future)
// stays, to be replayed.
func (o Outcome) spent() bool {
	switch o {
	case OutcomeApplied, OutcomeStale, OutcomeMarked, OutcomeSessionsRevoked, OutcomeAccountDeleted:
		return true
	}
	return false
}

// Result is one event's processing, for metrics and logs.
type Result struct {
	Source  domain.EventSource
	ID      string
	Type    string
	Outcome Outcome
	// Err is why the attempt failed, for OutcomeRetry and OutcomeFailed; it carries no secret.
	Err error
}

// Receipt is what a delivery achieved.
type Receipt struct {
	Outcome Outcome
	// Challenge is the answer to a verify event.
	Challenge string
}

// notify wakes this replica's worker without ever blocking the request that stored an event.
func (s *Service) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// eventKey returns id when it is a usable inbox key (1 to MaxEventIDLen bytes of letters,
// digits and . _ : -), else a content id of fallback, so a sender's odd id can neither break
// the store nor defeat deduplication of identical redeliveries.
func eventKey(id string, fallback []byte) string {
	if id == "" || len(id) > domain.MaxEventIDLen {
		return domain.ContentEventID(fallback)
	}
	for i := range len(id) {
		c := id[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return domain.ContentEventID(fallback)
		}
	}
	return id
}

// erasureForce is what a deletion that has been tried attempts times may go ahead without.
func (c Config) erasureForce(attempts int) domain.ErasureForce {
	return domain.ErasureForce{Vehicles: attempts >= c.ForceLocalDeleteAfter, Apple: attempts >= c.ForceAppleAfter}
}
