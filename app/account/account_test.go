package account_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/app/account"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

const issuer = "https://appleid.apple.com"

// start is the fixed clock of these tests.
var start = time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC)

// fakeDisconnector deletes vehicles through the store as the vehicle-link service does after a
// successful call to Smartcar, or fails with err.
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

// harness is the service on in-memory stores.
type harness struct {
	svc      *account.Service
	users    *memory.Users
	sessions *memory.Sessions
	conns    *memory.Connections
	commands *memory.Commands
	unlink   *fakeDisconnector
	grants   *memory.AppleGrants
	cipher   *memory.Cipher
	apple    *fakeRevoker
	dropped  []string // client id and reason of every grant deleted without a revocation
}

func newHarness() *harness {
	h := &harness{users: memory.NewUsers(), sessions: memory.NewSessions(), conns: memory.NewConnections(nil),
		cipher: memory.NewCipher(), apple: &fakeRevoker{}}
	h.grants = memory.NewAppleGrants(memory.NewSealedSecrets(), h.users)
	h.commands = memory.NewCommands(h.conns)
	h.unlink = &fakeDisconnector{conns: h.conns}
	h.svc = account.New(account.Deps{Users: h.users, Sessions: h.sessions, Connections: h.conns, Commands: h.commands,
		Vehicles: h.unlink, AppleGrants: h.grants, Cipher: h.cipher, AppleTokens: h.apple,
		AppleGrantDropped: func(_ domain.UserID, clientID, reason string, _ error) {
			h.dropped = append(h.dropped, clientID+" "+reason)
		}}).WithClock(func() time.Time { return start })
	return h
}

// fakeRevoker records the Apple refresh tokens revoked, or fails with err; onRevoke, if set,
// runs before each revocation (a sign-in racing the deletion).
type fakeRevoker struct {
	mu       sync.Mutex
	err      error
	revoked  []string
	onRevoke func()
}

func (f *fakeRevoker) Exchange(context.Context, string, domain.Secret) (ports.AppleGrant, error) {
	return ports.AppleGrant{}, errors.New("not used")
}

func (f *fakeRevoker) Revoke(_ context.Context, clientID string, token domain.Secret) error {
	if f.onRevoke != nil {
		f.onRevoke()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.revoked = append(f.revoked, clientID+" "+token.Reveal())
	return nil
}

// appleGrant stores a sealed Apple refresh token of user for clientID, as sign-in does.
func (h *harness) appleGrant(t *testing.T, user domain.UserID, clientID, token string) {
	t.Helper()
	g := domain.AppleGrant{UserID: user, ClientID: clientID, CreatedAt: start}
	sealed, err := h.cipher.Seal(t.Context(), g.Binding(), domain.NewSecret(token))
	if err != nil {
		t.Fatal(err)
	}
	g.RefreshToken = sealed
	if err := h.grants.PutAppleGrant(t.Context(), g); err != nil {
		t.Fatal(err)
	}
}

// owner is one user with a session and a connection of vehicles, as sign-in and Connect leave them.
type owner struct {
	user     domain.User
	session  domain.Session
	conn     domain.Connection
	vehicles []domain.Vehicle
}

func (h *harness) owner(t *testing.T, subject string, vehicles int) owner {
	t.Helper()
	ctx := t.Context()
	u := domain.NewUser(domain.AppleIdentity{Issuer: issuer, Subject: subject, Email: subject + "@privaterelay.appleid.com"}, start)
	if err := h.users.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	sess := domain.NewSession(u.ID, "install-"+subject, domain.DevicePhone, "iPhone", domain.HashToken(subject), start, domain.DefaultSessionLifetimes())
	if err := h.sessions.Create(ctx, sess); err != nil {
		t.Fatal(err)
	}
	sealed, _ := domain.ParseSealed("test:v1:" + subject)
	c := domain.Connection{ID: domain.NewConnectionID(), UserID: u.ID, SmartcarUserID: "sc-" + subject, Status: domain.ConnectionActive,
		Scopes: domain.DefaultConnectScopes(), Tokens: sealed, AccessExpiresAt: start.Add(time.Hour), RefreshExpiresAt: start.Add(time.Hour),
		CreatedAt: start, UpdatedAt: start}
	var vs []domain.Vehicle
	for i := range vehicles {
		vs = append(vs, domain.Vehicle{ID: domain.NewVehicleID(), SmartcarID: "sc-car-" + subject + string(rune('a'+i)), Make: "TESLA",
			Model: "Model 3", Year: 2023, CreatedAt: start})
	}
	stored, err := h.conns.SaveGrant(ctx, c, vs)
	if err != nil {
		t.Fatal(err)
	}
	return owner{user: u, session: sess, conn: c, vehicles: stored}
}

// command stores a finished lock command of o's vehicle i created at.
func (h *harness) command(t *testing.T, o owner, i int, at time.Time) domain.Command {
	t.Helper()
	c := domain.NewCommand(domain.CommandRequest{UserID: o.user.ID, VehicleID: o.vehicles[i].ID, ConnectionID: o.conn.ID,
		Action: domain.CommandLock, SessionID: o.session.ID, Device: domain.DevicePhone}, at, 30*time.Second)
	if _, err := h.commands.Admit(t.Context(), c, at.Add(time.Minute), ports.CommandRateLimit{}, at); err != nil {
		t.Fatal(err)
	}
	c, err := h.commands.Update(t.Context(), c.ID, func(x *domain.Command) error { return x.Expire(at) })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// assertGone fails unless nothing of o is left but its revoked sessions.
func (h *harness) assertGone(t *testing.T, o owner) {
	t.Helper()
	if _, err := h.users.Get(t.Context(), o.user.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("user after deletion: %v", err)
	}
	if vs, _ := h.conns.Vehicles(t.Context(), o.user.ID); len(vs) != 0 {
		t.Errorf("%d vehicles left", len(vs))
	}
	if _, err := h.conns.Get(t.Context(), o.conn.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("connection (and its sealed tokens) after deletion: %v", err)
	}
}

func TestDeleteErasesTheAccountOnly(t *testing.T) {
	h := newHarness()
	o := h.owner(t, "sub-1", 2)
	other := h.owner(t, "sub-2", 1)
	mine := []domain.Command{h.command(t, o, 0, start), h.command(t, o, 1, start.Add(time.Minute))}
	theirs := h.command(t, other, 0, start)
	if err := h.svc.Delete(t.Context(), o.user.ID, domain.ErasureForce{}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	h.assertGone(t, o)
	// The lock history stays in the audit log, under pseudonyms only.
	audit := h.commands.Audit()
	if len(audit) != len(mine) {
		t.Fatalf("%d audit entries, want %d", len(audit), len(mine))
	}
	for i, e := range audit {
		if e.AccountPseudonym == string(o.user.ID) || e.VehiclePseudonym == string(mine[i].VehicleID) || e.Action != mine[i].Action {
			t.Errorf("audit entry %d = %+v, want command %d's action under pseudonyms", i, e, i)
		}
	}
	if list, _ := h.commands.UserHistory(t.Context(), o.user.ID, "", 10); len(list) != 0 {
		t.Errorf("%d commands left in the history", len(list))
	}
	if _, err := h.commands.Get(t.Context(), theirs.ID); err != nil {
		t.Errorf("the other user's command: %v", err)
	}
	if s, _ := h.sessions.Get(t.Context(), o.session.ID); s.RevokedAt == nil || s.RevokeReason != domain.RevokeAccount {
		t.Errorf("session after deletion: %+v", s)
	}
	if h.unlink.calls != 2 {
		t.Errorf("%d disconnects at Smartcar, want 2", h.unlink.calls)
	}
	if _, err := h.users.Get(t.Context(), other.user.ID); err != nil {
		t.Errorf("the other user: %v", err)
	}
	if vs, _ := h.conns.Vehicles(t.Context(), other.user.ID); len(vs) != 1 {
		t.Errorf("the other user has %d vehicles, want 1", len(vs))
	}
	if s, _ := h.sessions.Get(t.Context(), other.session.ID); s.RevokedAt != nil {
		t.Error("the other user's session was revoked")
	}
	// A repeated request (the app retrying after a lost answer) finds nothing left to do.
	if err := h.svc.Delete(t.Context(), o.user.ID, domain.ErasureForce{}); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

func TestDeleteResumesAfterATemporaryFailure(t *testing.T) {
	h := newHarness()
	o := h.owner(t, "sub-1", 2)
	h.unlink.err = &domain.UpstreamError{Err: domain.ErrUpstreamUnavailable, Op: "disconnect", Status: 500, Transient: true}
	err := h.svc.Delete(t.Context(), o.user.ID, domain.ErasureForce{})
	if e := domain.AsError(err); e == nil || e.Code != "UNAVAILABLE" || !errors.Is(err, domain.ErrUpstreamUnavailable) {
		t.Fatalf("Delete with Smartcar down = %v, want UNAVAILABLE wrapping the upstream error", err)
	}
	// Access ended at once; nothing else is gone.
	if s, _ := h.sessions.Get(t.Context(), o.session.ID); s.RevokedAt == nil {
		t.Error("sessions survive a failed deletion")
	}
	if _, err := h.users.Get(t.Context(), o.user.ID); err != nil {
		t.Errorf("user after a failed deletion: %v", err)
	}
	if vs, _ := h.conns.Vehicles(t.Context(), o.user.ID); len(vs) != 2 {
		t.Errorf("%d vehicles after a failed deletion, want 2", len(vs))
	}
	h.unlink.err = nil
	if err := h.svc.Delete(t.Context(), o.user.ID, domain.ErasureForce{}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	h.assertGone(t, o)
}

func TestDeletePermanentFailure(t *testing.T) {
	h := newHarness()
	o := h.owner(t, "sub-1", 1)
	h.unlink.err = &domain.UpstreamError{Err: domain.ErrUpstreamRejected, Op: "disconnect", Status: 400}
	err := h.svc.Delete(t.Context(), o.user.ID, domain.ErasureForce{})
	if err == nil || domain.KindOf(err) != domain.KindInternal {
		t.Fatalf("Delete with Smartcar refusing = %v, want an internal error (a retry would not help)", err)
	}
	if _, err := h.users.Get(t.Context(), o.user.ID); err != nil {
		t.Fatalf("user after a failed deletion: %v", err)
	}
	// A caller that has tried long enough forces the erasure without Smartcar.
	if err := h.svc.Delete(t.Context(), o.user.ID, domain.ErasureForce{Vehicles: true, Apple: true}); err != nil {
		t.Fatalf("forced Delete: %v", err)
	}
	h.assertGone(t, o)
}

func TestExport(t *testing.T) {
	h := newHarness()
	o := h.owner(t, "sub-1", 2)
	other := h.owner(t, "sub-2", 1)
	h.command(t, other, 0, start)
	old := domain.NewSession(o.user.ID, "install-old", domain.DeviceWatch, "", domain.HashToken("old"), start.Add(-time.Hour), domain.DefaultSessionLifetimes())
	if err := h.sessions.Create(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	if _, err := h.sessions.Update(t.Context(), old.ID, func(s *domain.Session) error { s.Revoke(start, domain.RevokeSignOut); return nil }); err != nil {
		t.Fatal(err)
	}
	var want []domain.CommandID
	for i := range 3 {
		want = append(want, h.command(t, o, i%2, start.Add(time.Duration(i)*time.Minute)).ID)
	}
	slices.Reverse(want) // newest first
	// The second vehicle goes; its history stays the owner's data.
	if _, err := h.conns.DeleteVehicle(t.Context(), o.user.ID, o.vehicles[1].ID); err != nil {
		t.Fatal(err)
	}

	x, err := h.svc.Export(t.Context(), o.user.ID)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if x.User.ID != o.user.ID || x.User.Email != o.user.Email {
		t.Errorf("account %+v", x.User)
	}
	var sessions []domain.SessionID
	for _, s := range x.Sessions {
		sessions = append(sessions, s.ID)
	}
	if diff := cmp.Diff(sessions, []domain.SessionID{o.session.ID, old.ID}); diff != "" {
		t.Errorf("sessions (-got +want):\n%s", diff)
	}
	if len(x.Vehicles) != 1 || x.Vehicles[0].ID != o.vehicles[0].ID {
		t.Errorf("vehicles %+v, want the one still linked", x.Vehicles)
	}
	var got []domain.CommandID
	for _, c := range x.Commands {
		got = append(got, c.ID)
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("commands (-got +want):\n%s", diff)
	}

	if err := h.svc.Delete(t.Context(), o.user.ID, domain.ErasureForce{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Export(t.Context(), o.user.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Export of a deleted account = %v, want ErrNotFound", err)
	}
}

// TestDeleteRevokesAppleGrants: every Apple authorization the account holds is revoked at Apple
// with its own token and client id, and the tokens are gone afterwards.
func TestDeleteRevokesAppleGrants(t *testing.T) {
	h := newHarness()
	o := h.owner(t, "alice", 1)
	other := h.owner(t, "bob", 0)
	h.appleGrant(t, o.user.ID, "com.betterkey.app", "rt-phone")
	h.appleGrant(t, o.user.ID, "com.betterkey.app.watchkitapp", "rt-watch")
	h.appleGrant(t, other.user.ID, "com.betterkey.app", "rt-bob")
	if err := h.svc.Delete(t.Context(), o.user.ID, domain.ErasureForce{}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if diff := cmp.Diff([]string{"com.betterkey.app rt-phone", "com.betterkey.app.watchkitapp rt-watch"}, h.apple.revoked); diff != "" {
		t.Errorf("revoked at Apple (-want +got):\n%s", diff)
	}
	if list, _ := h.grants.AppleGrants(t.Context(), o.user.ID); len(list) != 0 {
		t.Errorf("grants left after deletion: %v", list)
	}
	if list, _ := h.grants.AppleGrants(t.Context(), other.user.ID); len(list) != 1 {
		t.Errorf("another account's grant was touched: %v", list)
	}
}

// TestDeleteAppleFailures: a temporary failure at Apple stops the deletion before anything of
// the account but its sessions is gone, and a retry finishes it; a token Apple refuses for good
// does not block the erasure; force goes ahead without Apple.
func TestDeleteAppleFailures(t *testing.T) {
	h := newHarness()
	o := h.owner(t, "alice", 1)
	h.appleGrant(t, o.user.ID, "com.betterkey.app", "rt-phone")
	h.apple.err = &domain.UpstreamError{Err: domain.ErrUnavailable, Op: "revoke apple token", Status: 503, Transient: true}
	err := h.svc.Delete(t.Context(), o.user.ID, domain.ErasureForce{})
	if domain.KindOf(err) != domain.KindUnavailable {
		t.Fatalf("Delete with Apple down = %v, want unavailable", err)
	}
	if _, err := h.users.Get(t.Context(), o.user.ID); err != nil {
		t.Fatalf("the user is gone although Apple was not told: %v", err)
	}
	if list, _ := h.grants.AppleGrants(t.Context(), o.user.ID); len(list) != 1 {
		t.Fatalf("the grant is gone although it was not revoked: %v", list)
	}
	if h.unlink.calls != 0 {
		t.Fatalf("vehicles were disconnected before Apple was done: %d calls", h.unlink.calls)
	}
	h.apple.err = nil
	if err := h.svc.Delete(t.Context(), o.user.ID, domain.ErasureForce{}); err != nil {
		t.Fatalf("Delete retried: %v", err)
	}
	if len(h.apple.revoked) != 1 {
		t.Fatalf("revoked %v, want the phone's token once", h.apple.revoked)
	}

	for name, tc := range map[string]struct {
		err    error
		force  bool
		reason string
	}{
		"refused for good": {&domain.UpstreamError{Err: domain.ErrUnavailable, Op: "revoke apple token", Status: 400, Code: "invalid_grant"}, false, "revoke_refused"},
		"forced":           {&domain.UpstreamError{Err: domain.ErrUnavailable, Op: "revoke apple token", Status: 503, Transient: true}, true, "forced"},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness()
			o := h.owner(t, "carol", 0)
			h.appleGrant(t, o.user.ID, "com.betterkey.app", "rt")
			h.apple.err = tc.err
			if err := h.svc.Delete(t.Context(), o.user.ID, domain.ErasureForce{Apple: tc.force}); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := h.users.Get(t.Context(), o.user.ID); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("user after Delete: %v, want gone", err)
			}
			if list, _ := h.grants.AppleGrants(t.Context(), o.user.ID); len(list) != 0 {
				t.Fatalf("grants left: %v", list)
			}
			if diff := cmp.Diff([]string{"com.betterkey.app " + tc.reason}, h.dropped); diff != "" {
				t.Fatalf("grants reported dropped (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDeleteRevokesAGrantASignInStoresMeanwhile: a sign-in that stores a new grant while the
// deletion revokes the old one does not slip through: the new grant is revoked too, nothing is
// reported dropped.
func TestDeleteRevokesAGrantASignInStoresMeanwhile(t *testing.T) {
	h := newHarness()
	o := h.owner(t, "alice", 0)
	h.appleGrant(t, o.user.ID, "com.betterkey.app", "rt-old")
	raced := false
	h.apple.onRevoke = func() {
		if !raced {
			raced = true
			h.appleGrant(t, o.user.ID, "com.betterkey.app", "rt-new")
		}
	}
	if err := h.svc.Delete(t.Context(), o.user.ID, domain.ErasureForce{}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if diff := cmp.Diff([]string{"com.betterkey.app rt-old", "com.betterkey.app rt-new"}, h.apple.revoked); diff != "" {
		t.Errorf("revoked at Apple (-want +got):\n%s", diff)
	}
	if len(h.dropped) != 0 {
		t.Errorf("grants reported dropped: %v", h.dropped)
	}
}
