package apple

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/betterkey/backend/domain"
)

// keyCache holds Apple's signing keys by kid. It fetches lazily, refetches when the keys are older
// than ttl, refetches on an unknown kid at most once per retry interval, and keeps serving the last
// good keys through an outage for up to maxStale. One cache serves identity tokens and, later,
// server-to-server notifications, which Apple signs with the same keys.
type keyCache struct {
	url      string
	client   *http.Client
	timeout  time.Duration
	ttl      time.Duration
	retry    time.Duration
	maxStale time.Duration
	now      func() time.Time

	flight singleflight.Group

	mu          sync.RWMutex
	keys        map[string]*rsa.PublicKey // replaced whole on each good fetch, never mutated
	fetchedAt   time.Time                 // time of the last good fetch
	attemptedAt time.Time                 // time of the last fetch attempt, good or bad
	lastErr     error                     // outcome of the last attempt
}

// keySnapshot is a consistent view of the cache taken under the lock.
type keySnapshot struct {
	keys        map[string]*rsa.PublicKey
	fetchedAt   time.Time
	attemptedAt time.Time
	lastErr     error
}

func (c *keyCache) snapshot() keySnapshot {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return keySnapshot{keys: c.keys, fetchedAt: c.fetchedAt, attemptedAt: c.attemptedAt, lastErr: c.lastErr}
}

// mayFetch reports whether an off-schedule fetch is allowed at now: never more than one attempt
// per retry interval, whatever the reason.
func (s keySnapshot) mayFetch(now time.Time, retry time.Duration) bool {
	return s.attemptedAt.IsZero() || now.Sub(s.attemptedAt) >= retry
}

// usable reports whether the keys may still verify tokens at now.
func (s keySnapshot) usable(now time.Time, maxStale time.Duration) bool {
	return s.keys != nil && now.Sub(s.fetchedAt) <= maxStale
}

// errUnknownKID is returned when a token names a key Apple does not publish, even after a refetch.
// It is unclassified here; the verifier turns it into the rejection of the token kind it checks.
var errUnknownKID = errors.New("signing key id is unknown")

// key returns the public key for kid. An unknown kid yields an invalid-token error; keys that
// cannot be had at all yield domain.ErrUnavailable.
func (c *keyCache) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	now := c.now()
	snap := c.snapshot()
	if (snap.keys == nil || now.Sub(snap.fetchedAt) >= c.ttl) && snap.mayFetch(now, c.retry) {
		if err := c.refresh(ctx); err != nil {
			return nil, err
		}
		snap = c.snapshot()
	}
	if !snap.usable(now, c.maxStale) {
		return nil, unavailable(snap.lastErr)
	}
	if k, ok := snap.keys[kid]; ok {
		return k, nil
	}
	if !snap.mayFetch(now, c.retry) {
		return nil, errUnknownKID
	}
	if err := c.refresh(ctx); err != nil {
		return nil, err
	}
	snap = c.snapshot()
	if k, ok := snap.keys[kid]; ok && snap.usable(now, c.maxStale) {
		return k, nil
	}
	return nil, errUnknownKID
}

// unavailable wraps the last fetch failure, if any, as domain.ErrUnavailable.
func unavailable(last error) error {
	if last == nil {
		return fmt.Errorf("get apple keys: no usable keys: %w", domain.ErrUnavailable)
	}
	return fmt.Errorf("get apple keys: %w: %w", domain.ErrUnavailable, last)
}

// refresh makes at most one fetch for all concurrent callers and returns once the cache reflects
// it. The fetch runs detached from the caller's context (bounded by the timeout), so one caller
// giving up does not fail the others; only a cancelled caller gets an error here. Fetch failures
// are recorded in the cache, not returned: callers decide from the snapshot.
func (c *keyCache) refresh(ctx context.Context) error {
	ch := c.flight.DoChan("jwks", func() (any, error) {
		// Re-check under the flight: a caller that saw the old state may arrive just after an
		// earlier flight finished, and must not cause a second fetch inside the interval.
		if !c.snapshot().mayFetch(c.now(), c.retry) {
			return nil, nil
		}
		c.fetchAndStore(context.WithoutCancel(ctx))
		return nil, nil
	})
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for apple keys: %w: %w", domain.ErrUnavailable, ctx.Err())
	}
}

// fetchAndStore performs one fetch and records its outcome; a failed fetch keeps the old keys.
func (c *keyCache) fetchAndStore(ctx context.Context) {
	attempted := c.now()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	keys, err := fetchJWKS(ctx, c.client, c.url)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.attemptedAt = attempted
	c.lastErr = err
	if err == nil {
		c.keys = keys
		c.fetchedAt = attempted
	}
}

// errNoUsableKeys is recorded when Apple answers with a key set we cannot use.
var errNoUsableKeys = errors.New("key set holds no usable rsa signing key")
