package webhook_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/adapters/smartcar"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/app/account"
	"github.com/betterkey/backend/app/webhook"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/test/fakeclock"
)

const (
	currentSecret  = "CANARY-CURRENT-MANAGEMENT-TOKEN"
	previousSecret = "CANARY-PREVIOUS-MANAGEMENT-TOKEN"
	issuer         = "https://appleid.apple.com"
)

// start is the fake clock's origin.
var start = time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC)

// fakeNotifications accepts the payloads it was given, as Apple's verifier would accept tokens
// Apple signed; anything else is invalid.
type fakeNotifications struct {
	mu    sync.Mutex
	valid map[string]domain.AppleNotification
}

func (f *fakeNotifications) VerifyNotification(_ context.Context, payload string) (domain.AppleNotification, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.valid[payload]
	if !ok {
		return domain.AppleNotification{}, domain.ErrInvalidNotification
	}
	return n, nil
}

// sign registers a notification and returns the payload that stands for it.
func (f *fakeNotifications) sign(jti string, t domain.AppleEventType, sub string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	payload := "jws-" + jti
	f.valid[payload] = domain.AppleNotification{ID: jti, Issuer: issuer, Audience: "com.betterkey.app", IssuedAt: start,
		Event: domain.AppleEvent{Type: t, Subject: sub, Time: start.Add(-time.Second)}}
	return payload
}

// fakeDisconnector deletes vehicles through the store as the vehicle-link service does after a
// successful upstream call, or fails with err.
type fakeDisconnector struct {
	conns *memory.Connections
	mu    sync.Mutex
	err   error
	calls int
}

func (f *fakeDisconnector) Disconnect(ctx context.Context, user domain.UserID, id domain.VehicleID) error {
	f.mu.Lock()
	f.calls++
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = f.conns.DeleteVehicle(ctx, user, id)
	return err
}

// harness is the service on in-memory stores with a simulated Smartcar to sign deliveries.
type harness struct {
	svc      *webhook.Service
	deps     webhook.Deps
	cfg      webhook.Config
	clock    *fakeclock.Clock
	inbox    *memory.WebhookInbox
	conns    *memory.Connections
	users    *memory.Users
	sessions *memory.Sessions
	apple    *fakeNotifications
	unlink   *fakeDisconnector
	sim      *smartcarsim.Simulator
}

func newHarness(t *testing.T, cfg webhook.Config, secrets ...string) *harness {
	t.Helper()
	if len(secrets) == 0 {
		secrets = []string{currentSecret}
	}
	var ss []domain.Secret
	for _, s := range secrets {
		ss = append(ss, domain.NewSecret(s))
	}
	events, err := smartcar.NewWebhooks(ss)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{clock: fakeclock.New(start), inbox: memory.NewWebhookInbox(), conns: memory.NewConnections(nil),
		users: memory.NewUsers(), sessions: memory.NewSessions(), apple: &fakeNotifications{valid: map[string]domain.AppleNotification{}}}
	h.unlink = &fakeDisconnector{conns: h.conns}
	h.sim, err = smartcarsim.New(smartcarsim.Options{RedirectURIs: []string{"https://betterkey.test/cb"}, ManagementToken: currentSecret,
		Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.sim.Close)
	h.deps = webhook.Deps{Inbox: h.inbox, VehicleEvents: events, Notifications: h.apple, Connections: h.conns,
		Users: h.users, Sessions: h.sessions, Accounts: account.New(account.Deps{Users: h.users, Sessions: h.sessions,
			Connections: h.conns, Vehicles: h.unlink}).WithClock(h.clock.Now)}
	h.cfg = cfg
	h.svc = webhook.New(h.deps, cfg).WithClock(h.clock.Now)
	return h
}

// rebuild replaces the service with one on edited dependencies, the stores staying the same.
func (h *harness) rebuild(edit func(*webhook.Deps)) {
	d := h.deps
	edit(&d)
	h.svc = webhook.New(d, h.cfg).WithClock(h.clock.Now)
}

// linked is one user with one connection and its vehicles, as Connect leaves them.
type linked struct {
	user     domain.User
	conn     domain.Connection
	vehicles []domain.Vehicle
	session  domain.Session
}

// link stores a user with a session and a connection of smartcarUser holding the Smartcar
// vehicle ids.
func (h *harness) link(t *testing.T, subject, smartcarUser string, smartcarIDs ...string) linked {
	t.Helper()
	ctx := t.Context()
	u := domain.NewUser(domain.AppleIdentity{Issuer: issuer, Subject: subject}, start)
	if err := h.users.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	sess := domain.NewSession(u.ID, "install", domain.DevicePhone, "", domain.HashToken(subject), start, domain.DefaultSessionLifetimes())
	if err := h.sessions.Create(ctx, sess); err != nil {
		t.Fatal(err)
	}
	sealed, _ := domain.ParseSealed("test:v1:" + subject)
	c := domain.Connection{ID: domain.NewConnectionID(), UserID: u.ID, SmartcarUserID: smartcarUser, Status: domain.ConnectionActive,
		Scopes: domain.DefaultConnectScopes(), Tokens: sealed, AccessExpiresAt: start.Add(time.Hour), RefreshExpiresAt: start.Add(time.Hour),
		CreatedAt: start, UpdatedAt: start}
	var vs []domain.Vehicle
	for _, id := range smartcarIDs {
		vs = append(vs, domain.Vehicle{ID: domain.NewVehicleID(), SmartcarID: id, Make: "TESLA", CreatedAt: start})
	}
	stored, err := h.conns.SaveGrant(ctx, c, vs)
	if err != nil {
		t.Fatal(err)
	}
	return linked{user: u, conn: c, vehicles: stored, session: sess}
}

// deliver signs body as Smartcar would (with key) and ingests it.
func (h *harness) deliver(t *testing.T, key string, body []byte) (webhook.Receipt, error) {
	t.Helper()
	return h.svc.IngestSmartcar(t.Context(), body, smartcarsim.Sign(key, body))
}

// stateEvent is a VEHICLE_STATE event reporting a lock state observed at.
func stateEvent(smartcarUser, vehicle string, locked bool, at time.Time) smartcarsim.Event {
	sig := smartcarsim.LockSignal(locked, at, at)
	return smartcarsim.NewVehicleStateEvent(smartcarsim.StateEvent{UserID: smartcarUser, Vehicle: smartcarsim.VehicleRef{ID: vehicle},
		Signals: []smartcarsim.Signal{sig}, Triggers: []smartcarsim.Signal{sig}})
}

// body renders one delivery attempt of e (a fresh delivery id each time, as Smartcar's retries).
func (h *harness) body(t *testing.T, e smartcarsim.Event) []byte {
	t.Helper()
	b, _, err := h.sim.SignedBody(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// process runs the worker once and returns the outcomes in order.
func (h *harness) process(t *testing.T) []webhook.Outcome {
	t.Helper()
	results, err := h.svc.ProcessDue(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []webhook.Outcome
	for _, r := range results {
		out = append(out, r.Outcome)
	}
	return out
}

// pending counts the events a worker could take now or ever.
func (h *harness) pending(t *testing.T) int {
	t.Helper()
	got, err := h.inbox.Claim(t.Context(), start.Add(100*365*24*time.Hour), time.Second, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(got)
}

func (h *harness) status(t *testing.T, l linked, i int) *domain.VehicleStatus {
	t.Helper()
	v, err := h.conns.Vehicle(t.Context(), l.user.ID, l.vehicles[i].ID)
	if err != nil {
		t.Fatal(err)
	}
	return v.Status
}

// failingStatus makes SaveStatus fail until it has failed n times.
type failingStatus struct {
	*memory.Connections
	mu sync.Mutex
	n  int
}

var errStoreDown = errors.New("store is down")

func (f *failingStatus) SaveStatus(ctx context.Context, s domain.VehicleStatus) (bool, error) {
	f.mu.Lock()
	if f.n > 0 {
		f.n--
		f.mu.Unlock()
		return false, errStoreDown
	}
	f.mu.Unlock()
	return f.Connections.SaveStatus(ctx, s)
}
