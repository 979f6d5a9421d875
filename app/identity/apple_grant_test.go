package identity_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/app/identity"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// fakeAppleTokens redeems codes of the form "code-<sub>"; err, when set, is every answer.
type fakeAppleTokens struct {
	mu        sync.Mutex
	err       error
	exchanges []string // client ids
}

func (f *fakeAppleTokens) Exchange(_ context.Context, clientID string, code domain.Secret) (ports.AppleGrant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exchanges = append(f.exchanges, clientID)
	if f.err != nil {
		return ports.AppleGrant{}, f.err
	}
	sub, ok := strings.CutPrefix(code.Reveal(), "code-")
	if !ok {
		return ports.AppleGrant{}, domain.ErrInvalidAuthorizationCode
	}
	return ports.AppleGrant{Subject: sub, RefreshToken: domain.NewSecret("apple-refresh-" + sub)}, nil
}

func (f *fakeAppleTokens) Revoke(context.Context, string, domain.Secret) error { return nil }

// failingCipher is a cipher that is down.
type failingCipher struct{ ports.TokenCipher }

func (failingCipher) Seal(context.Context, domain.SecretBinding, domain.Secret) (domain.SealedSecret, error) {
	return domain.SealedSecret{}, domain.ErrUnavailable
}

type grantFixture struct {
	fixture
	apple  *fakeAppleTokens
	grants *memory.AppleGrants
	cipher *memory.Cipher
}

func newGrantFixture(c ports.TokenCipher) grantFixture {
	f := newFixture()
	secrets := memory.NewSealedSecrets()
	g := grantFixture{fixture: f, apple: &fakeAppleTokens{}, grants: memory.NewAppleGrants(secrets, f.users), cipher: memory.NewCipher()}
	if c == nil {
		c = g.cipher
	}
	g.svc = identity.New(identity.Deps{Users: f.users, Sessions: f.sessions, Nonces: memory.NewNonces(), Apple: fakeAppleAud{}, Tokens: fakeTokens{},
		AppleTokens: g.apple, AppleGrants: g.grants, Cipher: c}, identity.Config{}).WithClock(f.clock.Now)
	return g
}

// fakeAppleAud is fakeApple with the phone app as audience, as the real verifier reports it.
type fakeAppleAud struct{ fakeApple }

func (f fakeAppleAud) Verify(ctx context.Context, tok string) (domain.AppleIdentity, error) {
	id, err := f.fakeApple.Verify(ctx, tok)
	id.Audience = "com.betterkey.app"
	return id, err
}

func (g grantFixture) signInWithCode(t *testing.T, sub, code string) (identity.Tokens, error) {
	t.Helper()
	raw, _, err := g.svc.IssueNonce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	in := g.input(sub, raw, "install-1")
	in.AuthorizationCode = domain.NewSecret(code)
	return g.svc.SignIn(t.Context(), in)
}

// TestSignInKeepsAppleRefreshToken: the code's refresh token is sealed to its row and stored for
// the identity token's app, and only the sealed form is stored.
func TestSignInKeepsAppleRefreshToken(t *testing.T) {
	g := newGrantFixture(nil)
	tok, err := g.signInWithCode(t, "sub-1", "code-sub-1")
	if err != nil || tok.AppleGrant != identity.AppleGrantStored {
		t.Fatalf("SignIn = %q, %v; want the grant stored", tok.AppleGrant, err)
	}
	list, err := g.grants.AppleGrants(t.Context(), tok.UserID)
	if err != nil || len(list) != 1 || list[0].ClientID != "com.betterkey.app" {
		t.Fatalf("AppleGrants = %v, %v; want one for com.betterkey.app", list, err)
	}
	if strings.Contains(list[0].RefreshToken.Ciphertext(), "apple-refresh") {
		t.Fatal("the stored grant holds the refresh token in clear")
	}
	pt, err := g.cipher.Open(t.Context(), list[0].Binding(), list[0].RefreshToken)
	if err != nil || pt.Reveal() != "apple-refresh-sub-1" {
		t.Fatalf("stored token opens to %v, %v", pt, err)
	}
}

// TestSignInRefusesBadAuthorizationCode: a code Apple refuses, or one of another Apple account,
// fails the sign-in with nothing created.
func TestSignInRefusesBadAuthorizationCode(t *testing.T) {
	for name, code := range map[string]string{"refused by apple": "garbage", "another account's": "code-sub-2"} {
		t.Run(name, func(t *testing.T) {
			g := newGrantFixture(nil)
			_, err := g.signInWithCode(t, "sub-1", code)
			if !errors.Is(err, domain.ErrInvalidAuthorizationCode) || domain.KindOf(err) != domain.KindUnauthenticated {
				t.Fatalf("SignIn = %v, want ErrInvalidAuthorizationCode", err)
			}
			if _, err := g.users.GetByApple(t.Context(), "https://appleid.apple.com", "sub-1"); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("a user was created: %v", err)
			}
		})
	}
	g := newGrantFixture(nil)
	if _, err := g.signInWithCode(t, "sub-1", strings.Repeat("c", 2000)); !errors.Is(err, domain.ErrInvalidAuthorizationCode) {
		t.Fatalf("SignIn with a 2000-byte code = %v, want ErrInvalidAuthorizationCode", err)
	}
	if len(g.apple.exchanges) != 0 {
		t.Fatal("an oversized code reached Apple")
	}
}

// TestSignInWithoutAppleOrCipher: Apple's token endpoint or the cipher being down does not lock
// the user out; the session is created and the outcome says the grant was not kept.
func TestSignInWithoutAppleOrCipher(t *testing.T) {
	down := newGrantFixture(nil)
	down.apple.err = domain.ErrUnavailable
	sealDown := newGrantFixture(failingCipher{})
	for name, g := range map[string]grantFixture{"apple down": down, "cipher down": sealDown} {
		t.Run(name, func(t *testing.T) {
			tok, err := g.signInWithCode(t, "sub-1", "code-sub-1")
			if err != nil || tok.AppleGrant != identity.AppleGrantNotStored || !errors.Is(tok.AppleGrantErr, domain.ErrUnavailable) {
				t.Fatalf("SignIn = %q (%v), %v; want a session without the grant", tok.AppleGrant, tok.AppleGrantErr, err)
			}
			if _, err := g.svc.Authenticate(t.Context(), tok.AccessToken.Reveal()); err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if list, _ := g.grants.AppleGrants(t.Context(), tok.UserID); len(list) != 0 {
				t.Fatalf("grants stored: %v", list)
			}
		})
	}
}

// TestSignInWithoutCode stores nothing and calls no one.
func TestSignInWithoutCode(t *testing.T) {
	g := newGrantFixture(nil)
	tok := g.signIn(t, "sub-1", "i1")
	if tok.AppleGrant != identity.AppleGrantNone || len(g.apple.exchanges) != 0 {
		t.Fatalf("outcome %q with %d exchanges, want none", tok.AppleGrant, len(g.apple.exchanges))
	}
}

// TestSignInRefusesAnAccountBeingDeleted: while an erasure is pending the account cannot be
// signed in to, its code is not redeemed, and no session starts.
func TestSignInRefusesAnAccountBeingDeleted(t *testing.T) {
	g := newGrantFixture(nil)
	tok, err := g.signInWithCode(t, "sub-1", "code-sub-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.users.MarkDeleting(t.Context(), tok.UserID, g.clock.Now()); err != nil {
		t.Fatal(err)
	}
	sessions, _ := g.sessions.ListByUser(t.Context(), tok.UserID)
	exchanges := len(g.apple.exchanges)
	for _, code := range []string{"code-sub-1", ""} {
		if _, err := g.signInWithCode(t, "sub-1", code); !errors.Is(err, domain.ErrAccountDeletionPending) || domain.KindOf(err) != domain.KindConflict {
			t.Fatalf("SignIn (code %q) during deletion = %v, want ErrAccountDeletionPending", code, err)
		}
	}
	if len(g.apple.exchanges) != exchanges {
		t.Fatal("a code was redeemed for an account being deleted")
	}
	if after, _ := g.sessions.ListByUser(t.Context(), tok.UserID); len(after) != len(sessions) {
		t.Fatalf("%d sessions after refused sign-ins, want %d", len(after), len(sessions))
	}
}
