// Package contract holds one exported test suite per storage port. Each suite turns the sentences
// of the port's doc comments into subtests and is run against the in-memory fakes and against
// every real adapter (PostgreSQL and the SQLite file database), which is what lets the core's
// tests trust the fakes.
//
// Suites run their subtests in parallel with fresh random ids, so a factory may hand every subtest
// the same underlying database.
package contract

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/betterkey/backend/domain"
)

// parallelism is how many goroutines the concurrency subtests race against one record.
const parallelism = 20

// now is the suite's clock: UTC and whole microseconds, the precision every store keeps.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails since Go 1.24
	return hex.EncodeToString(b)
}

func randomHash() domain.TokenHash { return domain.HashToken(randomHex(32)) }

// newUser returns an account with a fresh id and Apple subject.
func newUser(at time.Time) domain.User {
	return domain.NewUser(domain.AppleIdentity{
		Issuer:         "https://appleid.apple.com",
		Subject:        "001234." + randomHex(16) + ".0042",
		Email:          randomHex(6) + "@privaterelay.appleid.com",
		EmailVerified:  true,
		IsPrivateEmail: true,
	}, at)
}

// newSession returns a session of user with a fresh id, install and refresh hash.
func newSession(user domain.UserID, at time.Time) domain.Session {
	return domain.NewSession(user, "install-"+randomHex(8), domain.DevicePhone, "Test iPhone", randomHash(), at,
		domain.DefaultSessionLifetimes())
}

// wantErr fails the test unless err carries target in its chain and is classified as target's
// kind, which is what transports rely on.
func wantErr(t *testing.T, err error, target *domain.Error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want errors.Is(err, %v)", err, target)
	}
	if got := domain.KindOf(err); got != target.Kind {
		t.Fatalf("KindOf(err) = %v, want %v", got, target.Kind)
	}
}

// race runs f(i) for i in [0, n) on n goroutines released at the same moment and returns their
// errors by index.
func race(n int, f func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}
