package vehiclelink_test

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/app/vehiclelink"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/fakeclock"
)

type fixture struct {
	svc    *vehiclelink.Service
	api    *memory.VehicleAPI
	conns  *memory.Connections
	states *memory.ConnectStates
	clock  *fakeclock.Clock
	users  *memory.Users
}

func newFixture(t *testing.T) fixture { return newFixtureAuth(t, false) }

// newFixtureAuth is newFixture with an API that authenticates as the application (v3) when
// appAuth is set.
func newFixtureAuth(t *testing.T, appAuth bool) fixture {
	t.Helper()
	c := fakeclock.New(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	api := memory.NewVehicleAPI(memory.VehicleAPIOptions{ConnectURL: "https://connect.example", ClientID: "client",
		RedirectURI: "https://api.example/cb", Mode: "simulated", Now: c.Now, ApplicationAuth: appAuth})
	f := fixture{api: api, conns: memory.NewConnections(nil), states: memory.NewConnectStates(), clock: c, users: memory.NewUsers()}
	f.svc = vehiclelink.New(vehiclelink.Deps{States: f.states, Connections: f.conns, API: api, Cipher: memory.NewCipher()}, vehiclelink.Config{}).WithClock(c.Now)
	return f
}

func (f fixture) user(t *testing.T) domain.UserID {
	t.Helper()
	u := domain.NewUser(domain.AppleIdentity{Issuer: "https://appleid.apple.com", Subject: string(domain.NewUserID())}, f.clock.Now())
	if err := f.users.Create(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// link runs Connect for user with a fresh Smartcar owner of n vehicles, confirmed by user.
func (f fixture) link(t *testing.T, user domain.UserID, n int) (vehiclelink.Linked, string) {
	t.Helper()
	attrs := make([]domain.VehicleAttributes, n)
	for i := range attrs {
		attrs[i] = domain.VehicleAttributes{Make: "TESLA", Model: "Model 3", Year: 2023}
	}
	owner, _ := f.api.CreateVehicleUser(attrs...)
	pending := f.callback(t, user, owner)
	linked, err := f.svc.CompleteConnect(t.Context(), user, pending.Link)
	if err != nil {
		t.Fatal(err)
	}
	return linked, owner
}

// callback starts Connect as starter and plays Smartcar owner's browser through consent and our
// callback; it returns the pending link the callback sent to the app return URL.
func (f fixture) callback(t *testing.T, starter domain.UserID, owner string) vehiclelink.Pending {
	t.Helper()
	u, _, err := f.svc.StartConnect(t.Context(), starter, ports.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	code, err := f.api.Consent(u, owner)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := f.svc.Callback(t.Context(), vehiclelink.CallbackInput{State: stateOf(t, u), Code: code})
	if err != nil {
		t.Fatal(err)
	}
	if pending.Link.Empty() {
		t.Fatal("the callback returned no link")
	}
	return pending
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

	// Bob's state, confirmed by Bob, links to Bob; Alice gets nothing.
	u, _, _ := f.svc.StartConnect(t.Context(), bob, ports.ConnectOptions{})
	code, _ := f.api.Consent(u, owner)
	pending, err := f.svc.Callback(t.Context(), vehiclelink.CallbackInput{State: stateOf(t, u), Code: code})
	if err != nil {
		t.Fatalf("callback: %v", err)
	}
	linked, err := f.svc.CompleteConnect(t.Context(), bob, pending.Link)
	if err != nil || linked.UserID != bob || len(linked.Vehicles) != 1 {
		t.Fatalf("linked %+v, %v", linked, err)
	}
	if v, _ := f.svc.Vehicles(t.Context(), bob); len(v) != 1 {
		t.Fatalf("bob has %d vehicles, want 1", len(v))
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
	f.clock.Advance(domain.ConnectStateTTL + time.Second)
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

// TestConnectLoginCSRFFails plays the attack the pending link stops: Alice starts Connect on her
// account and gets Bob to consent at Smartcar with his car. The callback runs in Bob's browser and
// links nothing; the link it hands out goes to Bob's app, which cannot use it, and Alice never
// sees it.
func TestConnectLoginCSRFFails(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.user(t), f.user(t)
	bobsCar, _ := f.api.CreateVehicleUser(domain.VehicleAttributes{Make: "BMW", Model: "i4", Year: 2024})

	pending := f.callback(t, alice, bobsCar) // Alice's state, Bob's consent, Bob's browser
	if exchanges, _ := f.api.Counts(); exchanges != 0 {
		t.Fatalf("the callback exchanged %d codes, want none before confirmation", exchanges)
	}
	// Alice's app has a session but not the link.
	for _, guess := range []domain.Secret{{}, domain.NewSecret("guess"), domain.NewOpaqueToken()} {
		if _, err := f.svc.CompleteConnect(t.Context(), alice, guess); !errors.Is(err, vehiclelink.ErrConnectLinkInvalid) {
			t.Fatalf("alice completing without the link: %v, want CONNECT_LINK_INVALID", err)
		}
	}
	// Bob's app has the link but the flow is not Bob's.
	if _, err := f.svc.CompleteConnect(t.Context(), bob, pending.Link); !errors.Is(err, vehiclelink.ErrConnectLinkInvalid) {
		t.Fatalf("bob completing alice's link: %v, want CONNECT_LINK_INVALID", err)
	}
	// That attempt burned the link: even if it leaked to Alice afterwards, it is dead.
	if _, err := f.svc.CompleteConnect(t.Context(), alice, pending.Link); !errors.Is(err, vehiclelink.ErrConnectLinkInvalid) {
		t.Fatalf("alice completing the burned link: %v, want CONNECT_LINK_INVALID", err)
	}
	for name, u := range map[string]domain.UserID{"alice": alice, "bob": bob} {
		if v, err := f.svc.Vehicles(t.Context(), u); err != nil || len(v) != 0 {
			t.Errorf("%s has %d vehicles (%v), want none", name, len(v), err)
		}
	}
	if exchanges, _ := f.api.Counts(); exchanges != 0 {
		t.Fatalf("%d codes were exchanged, want none", exchanges)
	}
}

func TestPendingLinkRules(t *testing.T) {
	f := newFixture(t)
	alice := f.user(t)
	owner, _ := f.api.CreateVehicleUser(domain.VehicleAttributes{Make: "FORD", Model: "F-150", Year: 2022},
		domain.VehicleAttributes{Make: "FORD", Model: "Mustang Mach-E", Year: 2022})

	// The happy path links to the state's user, with the vehicles as the list shows them.
	pending := f.callback(t, alice, owner)
	if want := f.clock.Now().Add(domain.PendingLinkTTL); !pending.ExpiresAt.Equal(want) {
		t.Errorf("link expires at %v, want %v", pending.ExpiresAt, want)
	}
	linked, err := f.svc.CompleteConnect(t.Context(), alice, pending.Link)
	if err != nil || linked.UserID != alice || len(linked.Vehicles) != 2 {
		t.Fatalf("linked %+v, %v", linked, err)
	}
	for _, v := range linked.Views() {
		if v.UserID != alice || v.ConnectionStatus != domain.ConnectionActive || len(v.Scopes) == 0 {
			t.Errorf("view %+v", v)
		}
	}
	// A used link cannot be reused.
	if _, err := f.svc.CompleteConnect(t.Context(), alice, pending.Link); !errors.Is(err, vehiclelink.ErrConnectLinkInvalid) {
		t.Fatalf("reused link: %v", err)
	}
	// An expired link is refused, and nothing more is linked.
	expired := f.callback(t, alice, owner)
	f.clock.Advance(domain.PendingLinkTTL)
	if _, err := f.svc.CompleteConnect(t.Context(), alice, expired.Link); !errors.Is(err, vehiclelink.ErrConnectLinkInvalid) {
		t.Fatalf("expired link: %v", err)
	}
	if v, _ := f.svc.Vehicles(t.Context(), alice); len(v) != 2 {
		t.Fatalf("alice has %d vehicles, want 2", len(v))
	}
	// The sweep removes links nobody confirmed.
	f.callback(t, alice, owner)
	f.clock.Advance(domain.PendingLinkTTL + time.Second)
	if n, err := f.svc.SweepStates(t.Context()); err != nil || n != 1 {
		t.Fatalf("SweepStates = %d, %v; want 1", n, err)
	}
}

func TestExpiredAccessTokenIsRefreshedOnceAndStoredFirst(t *testing.T) {
	f := newFixture(t)
	user := f.user(t)
	linked, _ := f.link(t, user, 1)
	f.clock.Advance(3 * time.Hour) // past the 2 h access token
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			errs[i] = f.svc.WithAccess(context.Background(), linked.ConnectionID, func(domain.VehicleGrant) error { return nil })
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
	if !c.AccessExpiresAt.After(f.clock.Now()) {
		t.Fatal("the refreshed token set was not stored")
	}
}

func TestDeadRefreshTokenMarksNeedsReauth(t *testing.T) {
	f := newFixture(t)
	user := f.user(t)
	linked, owner := f.link(t, user, 1)
	f.api.RevokeConsent(owner)
	f.clock.Advance(3 * time.Hour)
	err := f.svc.WithAccess(t.Context(), linked.ConnectionID, func(domain.VehicleGrant) error { return nil })
	if !domain.RequiresReconnect(err) {
		t.Fatalf("got %v", err)
	}
	v, _ := f.svc.Vehicles(t.Context(), user)
	if v[0].ConnectionStatus == domain.ConnectionActive {
		t.Fatalf("connection still active after a dead refresh token")
	}
	// Later calls fail fast without asking Smartcar.
	_, before := f.api.Counts()
	_ = f.svc.WithAccess(t.Context(), linked.ConnectionID, func(domain.VehicleGrant) error { return nil })
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
	f.clock.Advance(31 * 24 * time.Hour)
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
	f.clock.Advance(3 * time.Hour)
	if err := f.svc.WithAccess(t.Context(), linked.ConnectionID, func(domain.VehicleGrant) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.conns.Update(t.Context(), linked.ConnectionID, func(c *domain.Connection) error {
		c.Tokens, c.AccessExpiresAt, c.RefreshExpiresAt = old.Tokens, old.AccessExpiresAt, old.RefreshExpiresAt
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(domain.VehicleRefreshGrace + time.Minute)
	err = f.svc.WithAccess(t.Context(), linked.ConnectionID, func(domain.VehicleGrant) error { return nil })
	if !errors.Is(err, domain.ErrReauthRequired) {
		t.Fatalf("got %v", err)
	}
	v, _ := f.svc.Vehicles(t.Context(), user)
	if v[0].ConnectionStatus != domain.ConnectionNeedsReauth {
		t.Fatalf("status %s", v[0].ConnectionStatus)
	}
}

// RevokeGrants disconnects every vehicle upstream and marks the connection needs_reauth; a
// temporary upstream failure stops it without marking, and running it again finishes.
func TestRevokeGrantsDisconnectsAndMarks(t *testing.T) {
	f := newFixture(t)
	user := f.user(t)
	linked, _ := f.link(t, user, 2)

	f.api.FailNext(memory.CallDisconnect, 503)
	conns, vehicles, err := f.svc.RevokeGrants(t.Context(), user)
	if err == nil || conns != 0 || vehicles != 0 {
		t.Fatalf("with Smartcar failing: %d, %d, %v; want an error and nothing done", conns, vehicles, err)
	}
	if c, _ := f.conns.Get(t.Context(), linked.ConnectionID); c.Status != domain.ConnectionActive {
		t.Fatalf("connection %s after a failed revocation, want still active", c.Status)
	}
	conns, vehicles, err = f.svc.RevokeGrants(t.Context(), user)
	if err != nil || conns != 1 || vehicles != 2 {
		t.Fatalf("RevokeGrants = %d, %d, %v; want 1 connection, 2 vehicles", conns, vehicles, err)
	}
	if c, _ := f.conns.Get(t.Context(), linked.ConnectionID); c.Status != domain.ConnectionNeedsReauth {
		t.Fatalf("connection %s, want needs_reauth", c.Status)
	}
	if conns, vehicles, err = f.svc.RevokeGrants(t.Context(), user); err != nil || conns != 1 || vehicles != 0 {
		t.Fatalf("again: %d, %d, %v; want the connection marked, nothing left to disconnect", conns, vehicles, err)
	}
}

// An operator's forced re-auth never softens a connection whose consent was revoked: revoked is
// final until the owner connects again (domain.Connection.Mark).
func TestRevokeGrantsKeepsARevokedConnectionRevoked(t *testing.T) {
	f := newFixture(t)
	user := f.user(t)
	linked, _ := f.link(t, user, 1)
	if _, err := f.conns.Update(t.Context(), linked.ConnectionID, func(c *domain.Connection) error {
		c.Mark(domain.ConnectionRevoked, time.Now())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.RevokeGrants(t.Context(), user); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.conns.Get(t.Context(), linked.ConnectionID); c.Status != domain.ConnectionRevoked {
		t.Fatalf("connection %s after a forced re-auth, want still revoked", c.Status)
	}
}

// The link stores what the owner granted, not what was requested: an owner who declined
// read_security leaves a connection without it, and the vehicle list shows the grant.
func TestLinkStoresTheGrantedScopes(t *testing.T) {
	f := newFixture(t)
	user := f.user(t)
	owner, _ := f.api.CreateVehicleUser(domain.VehicleAttributes{Make: "TESLA", Model: "Model 3", Year: 2023})
	u, _, err := f.svc.StartConnect(t.Context(), user, ports.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	declined, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := declined.Query()
	q.Set("scope", "required:control_security read_vehicle_info") // the owner unticked read_security
	declined.RawQuery = q.Encode()
	code, err := f.api.Consent(declined.String(), owner)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := f.svc.Callback(t.Context(), vehiclelink.CallbackInput{State: stateOf(t, u), Code: code})
	if err != nil {
		t.Fatal(err)
	}
	linked, err := f.svc.CompleteConnect(t.Context(), user, pending.Link)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"control_security", "read_vehicle_info"}
	if diff := cmp.Diff(linked.Scopes, want); diff != "" {
		t.Errorf("linked scopes (-got +want):\n%s", diff)
	}
	vs, err := f.svc.Vehicles(t.Context(), user)
	if err != nil || len(vs) != 1 || !cmp.Equal(vs[0].Scopes, want) {
		t.Fatalf("vehicle list scopes = %v, %v; want %v", vs, err, want)
	}
	if _, err := f.svc.Status(t.Context(), user, vs[0].ID); !errors.Is(err, domain.ErrScopeNotGranted) {
		t.Errorf("Status without read_security = %v, want ErrScopeNotGranted", err)
	}

	// The owner connects again and grants everything: the grant is read anew, in place.
	again, err := f.svc.CompleteConnect(t.Context(), user, f.callback(t, user, owner).Link)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"control_security", "read_security", "read_vehicle_info"}; !cmp.Equal(again.Scopes, want) {
		t.Errorf("scopes after re-auth = %v, want %v", again.Scopes, want)
	}
	if again.ConnectionID != linked.ConnectionID {
		t.Error("re-auth made a new connection")
	}
	if _, err := f.svc.Status(t.Context(), user, vs[0].ID); err != nil {
		t.Errorf("Status after granting read_security: %v", err)
	}
}

// With an API that acts as the application (v3), a linked connection keeps working after the
// owner's tokens expired, with no refresh at all, and the renewal job has nothing to do; a
// revoked grant still marks the connection.
func TestApplicationAuthNeedsNoRefresh(t *testing.T) {
	f := newFixtureAuth(t, true)
	user := f.user(t)
	linked, owner := f.link(t, user, 1)
	v := linked.Vehicles[0]
	f.clock.Advance(90 * 24 * time.Hour) // past both user tokens' lifetimes
	var got domain.VehicleGrant
	if err := f.svc.WithAccess(t.Context(), linked.ConnectionID, func(g domain.VehicleGrant) error { got = g; return nil }); err != nil {
		t.Fatal(err)
	}
	if got.SmartcarUserID != owner || !got.Access.Empty() {
		t.Errorf("grant = %q, access empty %v; want the Smartcar user and no token", got.SmartcarUserID, got.Access.Empty())
	}
	if _, err := f.svc.Status(t.Context(), user, v.ID); err != nil {
		t.Fatalf("Status: %v", err)
	}
	if renewed, failed, err := f.svc.RenewDue(t.Context(), 10); renewed+failed != 0 || err != nil {
		t.Errorf("RenewDue = %d, %d, %v; want nothing to do", renewed, failed, err)
	}
	if _, refreshes := f.api.Counts(); refreshes != 0 {
		t.Errorf("%d refreshes reached Smartcar, want 0", refreshes)
	}
	f.api.RevokeConsent(owner)
	f.clock.Advance(time.Hour) // past the status TTL
	if _, err := f.svc.Status(t.Context(), user, v.ID); !errors.Is(err, domain.ErrConsentRevoked) {
		t.Fatalf("Status after revocation = %v", err)
	}
	conn, err := f.conns.Get(t.Context(), linked.ConnectionID)
	if err != nil || conn.Status != domain.ConnectionRevoked {
		t.Errorf("connection = %v, %v; want revoked", conn.Status, err)
	}
}

// An application-authenticated call refused for the car maker login (re-auth required) marks the
// connection needs_reauth at once: no token refresh is tried, since none is used.
func TestApplicationAuthReauthMarksTheConnection(t *testing.T) {
	f := newFixtureAuth(t, true)
	user := f.user(t)
	linked, _ := f.link(t, user, 1)
	f.api.FailNext(memory.CallLockStatus, 401)
	if _, err := f.svc.Status(t.Context(), user, linked.Vehicles[0].ID); !errors.Is(err, domain.ErrReauthRequired) {
		t.Fatalf("Status = %v, want ErrReauthRequired", err)
	}
	conn, err := f.conns.Get(t.Context(), linked.ConnectionID)
	if err != nil || conn.Status != domain.ConnectionNeedsReauth {
		t.Errorf("connection = %v, %v; want needs_reauth", conn.Status, err)
	}
	if _, refreshes := f.api.Counts(); refreshes != 0 {
		t.Errorf("%d refreshes, want 0", refreshes)
	}
}
