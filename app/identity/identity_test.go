package identity_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/app/identity"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/fakeclock"
)

// fakeApple accepts any token naming a subject it knows: "sub|nonceClaim".
type fakeApple struct{}

func (fakeApple) Verify(_ context.Context, tok string) (domain.AppleIdentity, error) {
	var sub, nonce string
	if _, err := fmt.Sscanf(tok, "%s %s", &sub, &nonce); err != nil || sub == "bad" {
		return domain.AppleIdentity{}, domain.ErrInvalidIdentityToken
	}
	return domain.AppleIdentity{Issuer: "https://appleid.apple.com", Subject: sub, NonceHash: nonce, Email: sub + "@example.com"}, nil
}

// fakeTokens encodes claims in plain text; the real signer has its own tests.
type fakeTokens struct{}

func (fakeTokens) Issue(c ports.AccessClaims) (domain.Secret, error) {
	return domain.NewSecret(fmt.Sprintf("%s %s %d", c.UserID, c.SessionID, c.ExpiresAt.Unix())), nil
}

func (fakeTokens) Verify(tok string, now time.Time) (ports.AccessClaims, error) {
	var u, s string
	var exp int64
	if _, err := fmt.Sscanf(tok, "%s %s %d", &u, &s, &exp); err != nil {
		return ports.AccessClaims{}, domain.ErrInvalidAccessToken
	}
	if now.Unix() >= exp {
		return ports.AccessClaims{}, domain.ErrAccessTokenExpired
	}
	return ports.AccessClaims{UserID: domain.UserID(u), SessionID: domain.SessionID(s), ExpiresAt: time.Unix(exp, 0)}, nil
}

type fixture struct {
	svc      *identity.Service
	clock    *fakeclock.Clock
	sessions *memory.Sessions
	users    *memory.Users
}

func newFixture() fixture {
	c := fakeclock.New(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	f := fixture{clock: c, sessions: memory.NewSessions(), users: memory.NewUsers()}
	f.svc = identity.New(identity.Deps{Users: f.users, Sessions: f.sessions, Nonces: memory.NewNonces(), Apple: fakeApple{}, Tokens: fakeTokens{}},
		identity.Config{}).WithClock(c.Now)
	return f
}

func (f fixture) signIn(t *testing.T, sub, install string) identity.Tokens {
	t.Helper()
	raw, _, err := f.svc.IssueNonce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.svc.SignIn(t.Context(), f.input(sub, raw, install))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f fixture) input(sub string, raw domain.Secret, install string) identity.SignInInput {
	return identity.SignInInput{
		IdentityToken: domain.NewSecret(sub + " " + domain.AppleNonceClaim(raw.Reveal())),
		Nonce:         raw, InstallID: install, Device: "phone",
	}
}

func TestSignInCreatesUserOnceAndAuthenticates(t *testing.T) {
	f := newFixture()
	a := f.signIn(t, "sub-1", "i1")
	b := f.signIn(t, "sub-1", "i2")
	if a.UserID != b.UserID {
		t.Fatalf("second sign-in made a new user: %s vs %s", a.UserID, b.UserID)
	}
	p, err := f.svc.Authenticate(t.Context(), a.AccessToken.Reveal())
	if err != nil || p.SessionID != a.SessionID {
		t.Fatalf("authenticate: %+v, %v", p, err)
	}
}

func TestNonceRules(t *testing.T) {
	f := newFixture()
	raw, _, _ := f.svc.IssueNonce(t.Context())
	if _, err := f.svc.SignIn(t.Context(), f.input("sub-1", raw, "i")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.SignIn(t.Context(), f.input("sub-1", raw, "i")); !errors.Is(err, domain.ErrInvalidNonce) {
		t.Fatalf("replayed nonce: got %v", err)
	}
	old, _, _ := f.svc.IssueNonce(t.Context())
	f.clock.Advance(domain.NonceTTL)
	if _, err := f.svc.SignIn(t.Context(), f.input("sub-1", old, "i")); !errors.Is(err, domain.ErrInvalidNonce) {
		t.Fatalf("expired nonce: got %v", err)
	}
	other, _, _ := f.svc.IssueNonce(t.Context())
	in := f.input("sub-1", other, "i")
	in.Nonce = domain.NewSecret("not-the-nonce")
	if _, err := f.svc.SignIn(t.Context(), in); !errors.Is(err, domain.ErrInvalidNonce) {
		t.Fatalf("wrong nonce: got %v", err)
	}
	// The failed attempt did not burn the real nonce: the nonce is consumed only by a valid token.
	if _, err := f.svc.SignIn(t.Context(), f.input("sub-1", other, "i")); err != nil {
		t.Fatalf("nonce burnt by a failed attempt: %v", err)
	}
}

func TestFailedSignInCreatesNothing(t *testing.T) {
	f := newFixture()
	raw, _, _ := f.svc.IssueNonce(t.Context())
	in := f.input("bad", raw, "i")
	if _, err := f.svc.SignIn(t.Context(), in); !errors.Is(err, domain.ErrInvalidIdentityToken) {
		t.Fatalf("got %v", err)
	}
	if _, err := f.users.GetByApple(t.Context(), "https://appleid.apple.com", "bad"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("user created by a failed sign-in: %v", err)
	}
}

func TestRefreshRotatesAndDetectsReuse(t *testing.T) {
	f := newFixture()
	first := f.signIn(t, "sub-1", "i")
	second, err := f.svc.Refresh(t.Context(), first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if second.RefreshToken.Reveal() == first.RefreshToken.Reveal() {
		t.Fatal("refresh token not rotated")
	}
	if _, err := f.svc.Refresh(t.Context(), first.RefreshToken); !errors.Is(err, domain.ErrRefreshTokenReused) {
		t.Fatalf("reuse: got %v", err)
	}
	// The reuse revoked the whole session: the newest token and the access token die too.
	if _, err := f.svc.Refresh(t.Context(), second.RefreshToken); !errors.Is(err, domain.ErrSessionRevoked) {
		t.Fatalf("after reuse: got %v", err)
	}
	if _, err := f.svc.Authenticate(t.Context(), second.AccessToken.Reveal()); !errors.Is(err, domain.ErrSessionRevoked) {
		t.Fatalf("access after reuse: got %v", err)
	}
}

func TestRefreshRejections(t *testing.T) {
	f := newFixture()
	if _, err := f.svc.Refresh(t.Context(), domain.NewSecret("unknown")); !errors.Is(err, domain.ErrInvalidRefreshToken) {
		t.Fatalf("unknown: got %v", err)
	}
	if _, err := f.svc.Refresh(t.Context(), domain.NewSecret("")); !errors.Is(err, domain.ErrInvalidRefreshToken) {
		t.Fatalf("empty: got %v", err)
	}
	idle := f.signIn(t, "sub-1", "a")
	f.clock.Advance(30*24*time.Hour + time.Second)
	if _, err := f.svc.Refresh(t.Context(), idle.RefreshToken); !errors.Is(err, domain.ErrSessionExpired) {
		t.Fatalf("idle-expired: got %v", err)
	}
	// Refreshing every 20 days keeps the idle clock fresh but cannot pass the 90-day cap.
	live := f.signIn(t, "sub-1", "b")
	tok := live.RefreshToken
	for range 4 {
		f.clock.Advance(20 * 24 * time.Hour)
		next, err := f.svc.Refresh(t.Context(), tok)
		if err != nil {
			t.Fatal(err)
		}
		tok = next.RefreshToken
	}
	f.clock.Advance(11 * 24 * time.Hour)
	if _, err := f.svc.Refresh(t.Context(), tok); !errors.Is(err, domain.ErrSessionExpired) {
		t.Fatalf("absolute-expired: got %v", err)
	}
}

func TestRevocationIsImmediate(t *testing.T) {
	f := newFixture()
	a := f.signIn(t, "sub-1", "i1")
	b := f.signIn(t, "sub-1", "i2")
	p, _ := f.svc.Authenticate(t.Context(), a.AccessToken.Reveal())
	if err := f.svc.SignOut(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(t.Context(), a.AccessToken.Reveal()); !errors.Is(err, domain.ErrSessionRevoked) {
		t.Fatalf("signed-out access token: got %v", err)
	}
	if _, err := f.svc.Authenticate(t.Context(), b.AccessToken.Reveal()); err != nil {
		t.Fatalf("other session hit: %v", err)
	}
	other := f.signIn(t, "sub-2", "i1")
	if err := f.svc.RevokeSession(t.Context(), other.UserID, b.SessionID, domain.RevokeUser); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("revoking another user's session: got %v", err)
	}
	if n, err := f.svc.RevokeAllSessions(t.Context(), b.UserID, domain.RevokeAdmin); err != nil || n != 1 {
		t.Fatalf("revoke all: %d, %v", n, err)
	}
}

func TestSignInReplacesSessionOfSameInstall(t *testing.T) {
	f := newFixture()
	a := f.signIn(t, "sub-1", "install")
	f.signIn(t, "sub-1", "install")
	if _, err := f.svc.Authenticate(t.Context(), a.AccessToken.Reveal()); !errors.Is(err, domain.ErrSessionRevoked) {
		t.Fatalf("old session of the same install still works: %v", err)
	}
}

func TestParallelRefreshOneWins(t *testing.T) {
	f := newFixture()
	a := f.signIn(t, "sub-1", "i")
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 16 {
		wg.Go(func() {
			if _, err := f.svc.Refresh(context.Background(), a.RefreshToken); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d parallel refreshes succeeded, want 1", wins)
	}
}

func TestInputValidation(t *testing.T) {
	f := newFixture()
	raw, _, _ := f.svc.IssueNonce(t.Context())
	for name, mut := range map[string]func(*identity.SignInInput){
		"no token":   func(in *identity.SignInInput) { in.IdentityToken = domain.Secret{} },
		"no install": func(in *identity.SignInInput) { in.InstallID = "" },
		"bad device": func(in *identity.SignInInput) { in.Device = "tablet" },
		"no nonce":   func(in *identity.SignInInput) { in.Nonce = domain.Secret{} },
		"long name":  func(in *identity.SignInInput) { in.DeviceName = string(make([]byte, 200)) },
		"huge token": func(in *identity.SignInInput) { in.IdentityToken = domain.NewSecret(string(make([]byte, 1<<20))) },
	} {
		t.Run(name, func(t *testing.T) {
			in := f.input("sub-1", raw, "i")
			mut(&in)
			_, err := f.svc.SignIn(t.Context(), in)
			if k := domain.KindOf(err); k != domain.KindInvalid && k != domain.KindUnauthenticated {
				t.Fatalf("got %v (kind %v)", err, k)
			}
		})
	}
}

// TestLiveSessionsHidesRevokedAndIdleExpired: the list the user sees follows the service clock,
// so an idle-expired session disappears exactly when the service stops accepting it.
func TestLiveSessionsHidesRevokedAndIdleExpired(t *testing.T) {
	f := newFixture()
	a := f.signIn(t, "sub-1", "i1")
	f.signIn(t, "sub-1", "i2")
	revoked := f.signIn(t, "sub-1", "i3")
	if err := f.svc.RevokeSession(t.Context(), a.UserID, revoked.SessionID, domain.RevokeUser); err != nil {
		t.Fatal(err)
	}
	ids := func() []domain.SessionID {
		t.Helper()
		list, err := f.svc.LiveSessions(t.Context(), a.UserID)
		if err != nil {
			t.Fatal(err)
		}
		var out []domain.SessionID
		for _, s := range list {
			out = append(out, s.ID)
		}
		return out
	}
	if got := ids(); len(got) != 2 || slices.Contains(got, revoked.SessionID) {
		t.Fatalf("live sessions = %v, want the two unrevoked ones", got)
	}
	f.clock.Advance(20 * 24 * time.Hour)
	if _, err := f.svc.Refresh(t.Context(), a.RefreshToken); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	f.clock.Advance(11 * 24 * time.Hour) // the other session has now been idle for 31 days
	if got := ids(); len(got) != 1 || got[0] != a.SessionID {
		t.Fatalf("live sessions after 31 idle days = %v, want only %s", got, a.SessionID)
	}
}

// TestSignInBeyondTheLimitEndsTheOldestSession: an account never holds more than
// domain.MaxLiveSessions usable sessions, however many installs sign in, and the session that
// made room is refused from then on.
func TestSignInBeyondTheLimitEndsTheOldestSession(t *testing.T) {
	f := newFixture()
	first := f.signIn(t, "sub-1", "install-0")
	for i := 1; i <= domain.MaxLiveSessions; i++ {
		f.clock.Advance(time.Second)
		f.signIn(t, "sub-1", fmt.Sprintf("install-%d", i))
	}
	live, err := f.svc.LiveSessions(t.Context(), first.UserID)
	if err != nil || len(live) != domain.MaxLiveSessions {
		t.Fatalf("live sessions = %d, %v; want %d", len(live), err, domain.MaxLiveSessions)
	}
	s, err := f.sessions.Get(t.Context(), first.SessionID)
	if err != nil || s.RevokedAt == nil || s.RevokeReason != domain.RevokeSessionLimit {
		t.Fatalf("oldest session = %+v, %v; want revoked for the limit", s, err)
	}
	if _, err := f.svc.Refresh(t.Context(), first.RefreshToken); !errors.Is(err, domain.ErrSessionRevoked) {
		t.Errorf("Refresh of the session that made room = %v; want ErrSessionRevoked", err)
	}
}

// An account that is over the limit (sign-ins that raced at it, sessions from before it) comes
// back to it with its next sign-in, oldest sessions first, instead of staying over for good.
func TestSignInBringsAnAccountOverTheLimitBack(t *testing.T) {
	f := newFixture()
	first := f.signIn(t, "sub-1", "install-0")
	for i := range domain.MaxLiveSessions + 10 {
		f.clock.Advance(time.Second)
		x := domain.NewSession(first.UserID, fmt.Sprintf("extra-%d", i), domain.DevicePhone, "", domain.HashToken(fmt.Sprintf("r-%d", i)),
			f.clock.Now(), domain.DefaultSessionLifetimes())
		if err := f.sessions.Create(t.Context(), x); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Advance(time.Second)
	f.signIn(t, "sub-1", "install-new")
	live, err := f.sessions.ListLive(t.Context(), first.UserID, f.clock.Now(), 1000)
	if err != nil || len(live) != domain.MaxLiveSessions {
		t.Fatalf("live sessions after the sign-in = %d, %v; want %d", len(live), err, domain.MaxLiveSessions)
	}
	if s, err := f.sessions.Get(t.Context(), first.SessionID); err != nil || s.RevokeReason != domain.RevokeSessionLimit {
		t.Errorf("oldest session = %+v, %v; want revoked for the limit", s, err)
	}
}
