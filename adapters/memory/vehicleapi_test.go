package memory_test

import (
	"sync"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

// vehicleClock is a settable clock shared by the fake and its control.
type vehicleClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *vehicleClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *vehicleClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeControl adapts the fake's own switches to the contract's control interface.
type fakeControl struct {
	*vehicleClock
	f *memory.VehicleAPI
}

func (c fakeControl) Client() (string, string) { return c.f.ClientID(), c.f.RedirectURI() }

func (c fakeControl) CreateUser(_ *testing.T, v ...domain.VehicleAttributes) (string, []string) {
	return c.f.CreateVehicleUser(v...)
}

func (c fakeControl) Consent(t *testing.T, authorizeURL, userID string) domain.Secret {
	t.Helper()
	code, err := c.f.Consent(authorizeURL, userID)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func (c fakeControl) SetCondition(_ *testing.T, id string, cond contract.VehicleCondition) {
	c.f.SetCondition(id, memory.VehicleCondition(cond))
}

func (c fakeControl) RateLimit(_ *testing.T, id string, d time.Duration) { c.f.RateLimit(id, d) }

func (c fakeControl) FailNext(_ *testing.T, call contract.VehicleCall, status int) {
	c.f.FailNext(memory.VehicleCall(call), status)
}

func (c fakeControl) HangNextCommand(*testing.T) <-chan struct{} { return c.f.HangNextCommand() }

func (c fakeControl) RevokeConsent(_ *testing.T, user string) { c.f.RevokeConsent(user) }

func (c fakeControl) Counts() (int, int) { return c.f.Counts() }

func (c fakeControl) Car(t *testing.T, id string) (bool, int) {
	t.Helper()
	locked, n, ok := c.f.Car(id)
	if !ok {
		t.Fatalf("no car %q", id)
	}
	return locked, n
}

func (c fakeControl) RefreshGrace() time.Duration { return domain.VehicleRefreshGrace }

func TestVehicleAPIContract(t *testing.T) {
	for name, appAuth := range map[string]bool{"UserTokens": false, "ApplicationAuth": true} {
		t.Run(name, func(t *testing.T) {
			contract.VehicleAPI(t, func(*testing.T) (ports.VehicleAPI, contract.VehicleAPIControl) {
				clock := &vehicleClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
				f := memory.NewVehicleAPI(memory.VehicleAPIOptions{Now: clock.Now, ApplicationAuth: appAuth})
				return f, fakeControl{vehicleClock: clock, f: f}
			})
		})
	}
}
