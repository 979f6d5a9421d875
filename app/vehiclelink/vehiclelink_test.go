package vehiclelink_test

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/app/vehiclelink"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	svc   *vehiclelink.Service
	api   *memory.VehicleAPI
	conns *memory.Connections
	clock *clock
	users *memory.Users
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	api := memory.NewVehicleAPI(memory.VehicleAPIOptions{ConnectURL: "https://connect.example", ClientID: "client", RedirectURI: "https://api.example/cb", Mode: "simulated", Now: c.now})
	f := fixture{api: api, conns: memory.NewConnections(nil), clock: c, users: memory.NewUsers()}
	f.svc = vehiclelink.New(vehiclelink.Deps{States: memory.NewConnectStates(), Connections: f.conns, API: api, Cipher: memory.NewCipher()}, vehiclelink.Config{}).WithClock(c.now)
	return f
}

func (f fixture) user(t *testing.T) domain.UserID {
	t.Helper()
	u := domain.NewUser(domain.AppleIdentity{Issuer: "https://appleid.apple.com", Subject: string(domain.NewUserID())}, f.clock.now())
	if err := f.users.Create(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// link runs Connect for user with a fresh Smartcar owner of n vehicles.
func (f fixture) link(t *testing.T, user domain.UserID, n int) (vehiclelink.Linked, string) {
	t.Helper()
	attrs := make([]domain.VehicleAttributes, n)
	for i := range attrs {
		attrs[i] = domain.VehicleAttributes{Make: "TESLA", Model: "Model 3", Year: 2023}
	}
	owner, _ := f.api.CreateVehicleUser(attrs...)
	u, _, err := f.svc.StartConnect(t.Context(), user, ports.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	code, err := f.api.Consent(u, owner)
	if err != nil {
		t.Fatal(err)
	}
	linked, err := f.svc.Callback(t.Context(), vehiclelink.CallbackInput{State: stateOf(t, u), Code: code})
	if err != nil {
		t.Fatal(err)
	}
	return linked, owner
}

func stateOf(t *testing.T, authorize string) domain.Secret {
	t.Helper()
	u, err := url.Parse(authorize)
	if err != nil {
		t.Fatal(err)
	}
	return domain.NewSecret(u.Query().Get("state"))
}

func TestStateRules(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.user(t), f.user(t)
	owner, _ := f.api.CreateVehicleUser(domain.VehicleAttributes{Make: "FORD", Model: "F-150", Year: 2022})

	// Bob's state links to Bob whoever's browser completes it; Alice gets nothing.
	u, _, _ := f.svc.StartConnect(t.Context(), bob, ports.ConnectOptions{})
	code, _ := f.api.Consent(u, owner)
	linked, err := f.svc.Callback(t.Context(), vehiclelink.CallbackInput{State: stateOf(t, u), Code: code})
	if err != nil || linked.UserID != bob {
		t.Fatalf("linked %+v, %v", linked, err)
	}
	if v, _ := f.svc.Vehicles(t.Context(), alice); len(v) != 0 {
		t.Fatal("another user's state linked a vehicle to alice")
	}
	// Reused state.
	if _, err := f.svc.Callback(t.Context(), vehiclelink.CallbackInput{State: stateOf(t, u), Code: code}); !errors.Is(err, vehiclelink.ErrConnectStateInvalid) {
		t.Fatalf("reused state: %v", err)
	}
	// Expired state.
	u2, _, _ := f.svc.StartConnect(t.Context(), alice, ports.ConnectOptions{})
	f.clock.add(domain.ConnectStateTTL + time.Second)
	if _, err := f.svc.Callback(t.Context(), vehiclelink.CallbackInput{State: stateOf(t, u2), Code: code}); !errors.Is(err, vehiclelink.ErrConnectStateInvalid) {
		t.Fatalf("expired state: %v", err)
	}
	// Unknown state, and an error outcome that still consumes the state and stores nothing.
	if _, err := f.svc.Callback(t.Context(), vehiclelink.CallbackInput{State: domain.NewSecret("nope")}); !errors.Is(err, vehiclelink.ErrConnectStateInvalid) {
		t.Fatalf("unknown state: %v", err)
	}
	u3, _, _ := f.svc.StartConnect(t.Context(), alice, ports.ConnectOptions{})
	if _, err := f.svc.Callback(t.Context(), vehiclelink.CallbackInput{State: stateOf(t, u3), Error: "access_denied"}); !errors.Is(err, vehiclelink.ErrConnectDenied) {
		t.Fatalf("access_denied: %v", err)
	}
	if v, _ := f.svc.Vehicles(t.Context(), alice); len(v) != 0 {
		t.Fatal("a denied connect stored a vehicle")
	}
}

func TestExpiredAccessTokenIsRefreshedOnceAndStoredFirst(t *testing.T) {
	f := newFixture(t)
	user := f.user(t)
	linked, _ := f.link(t, user, 1)
	f.clock.add(3 * time.Hour) // past the 2 h access token
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			errs[i] = f.svc.WithAccess(context.Background(), linked.ConnectionID, func(domain.Secret) error { return nil })
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, refreshes := f.api.Counts(); refreshes != 1 {
		t.Fatalf("%d refreshes, want 1", refreshes)
	}
	c, err := f.conns.Get(t.Context(), linked.ConnectionID)
	if err != nil {
		t.Fatal(err)
	}
	if !c.AccessExpiresAt.After(f.clock.now()) {
		t.Fatal("the refreshed token set was not stored")
	}
}

func TestDeadRefreshTokenMarksNeedsReauth(t *testing.T) {
	f := newFixture(t)
	user := f.user(t)
	linked, owner := f.link(t, user, 1)
	f.api.RevokeConsent(owner)
	f.clock.add(3 * time.Hour)
	err := f.svc.WithAccess(t.Context(), linked.ConnectionID, func(domain.Secret) error { return nil })
	if !domain.RequiresReconnect(err) {
		t.Fatalf("got %v", err)
	}
	v, _ := f.svc.Vehicles(t.Context(), user)
	if v[0].ConnectionStatus == domain.ConnectionActive {
		t.Fatalf("connection still active after a dead refresh token")
	}
	// Later calls fail fast without asking Smartcar.
	_, before := f.api.Counts()
	_ = f.svc.WithAccess(t.Context(), linked.ConnectionID, func(domain.Secret) error { return nil })
	if _, after := f.api.Counts(); after != before {
		t.Fatal("a dead connection still refreshes")
	}
}

func TestRenewDueRefreshesBeforeTheCliff(t *testing.T) {
	f := newFixture(t)
	user := f.user(t)
	f.link(t, user, 1)
	if renewed, _, _ := f.svc.RenewDue(t.Context(), 10); renewed != 0 {
		t.Fatalf("renewed a fresh connection")
	}
	f.clock.add(31 * 24 * time.Hour)
	if renewed, failed, err := f.svc.RenewDue(t.Context(), 10); err != nil || renewed != 1 || failed != 0 {
		t.Fatalf("renewed %d failed %d: %v", renewed, failed, err)
	}
}

func TestStatusCachesAndDisconnectCleansUp(t *testing.T) {
	f := newFixture(t)
	user := f.user(t)
	linked, _ := f.link(t, user, 2)
	id := linked.Vehicles[0].ID
	st, err := f.svc.Status(t.Context(), user, id)
	if err != nil || st.Locked == nil || st.Source != domain.StatusLive {
		t.Fatalf("status %+v, %v", st, err)
	}
	again, _ := f.svc.Status(t.Context(), user, id)
	if !again.FetchedAt.Equal(st.FetchedAt) {
		t.Fatal("a fresh status was not served from the store")
	}
	if _, err := f.svc.Status(t.Context(), f.user(t), id); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("another user's vehicle: %v", err)
	}
	for _, v := range linked.Vehicles {
		if err := f.svc.Disconnect(t.Context(), user, v.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.conns.Get(t.Context(), linked.ConnectionID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("connection survived its last vehicle: %v", err)
	}
}

// TestRotatedAwayRefreshTokenNeedsReauth: a refresh token that was already rotated (by a lost
// response, or by someone else holding it) and is past Smartcar's grace ends in needs_reauth, not
// a crash or a loop.
func TestRotatedAwayRefreshTokenNeedsReauth(t *testing.T) {
	f := newFixture(t)
	user := f.user(t)
	linked, _ := f.link(t, user, 1)
	old, err := f.conns.Get(t.Context(), linked.ConnectionID)
	if err != nil {
		t.Fatal(err)
	}
	// A refresh rotates the token set; then the old set is put back, as if the new one was lost.
	f.clock.add(3 * time.Hour)
	if err := f.svc.WithAccess(t.Context(), linked.ConnectionID, func(domain.Secret) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.conns.Update(t.Context(), linked.ConnectionID, func(c *domain.Connection) error {
		c.Tokens, c.AccessExpiresAt, c.RefreshExpiresAt = old.Tokens, old.AccessExpiresAt, old.RefreshExpiresAt
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.clock.add(domain.VehicleRefreshGrace + time.Minute)
	err = f.svc.WithAccess(t.Context(), linked.ConnectionID, func(domain.Secret) error { return nil })
	if !errors.Is(err, domain.ErrReauthRequired) {
		t.Fatalf("got %v", err)
	}
	v, _ := f.svc.Vehicles(t.Context(), user)
	if v[0].ConnectionStatus != domain.ConnectionNeedsReauth {
		t.Fatalf("status %s", v[0].ConnectionStatus)
	}
}
