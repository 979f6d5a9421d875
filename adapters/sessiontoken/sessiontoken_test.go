package sessiontoken_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/betterkey/backend/adapters/sessiontoken"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

func newSigner(t testing.TB) *sessiontoken.Signer {
	t.Helper()
	s, err := sessiontoken.New(sessiontoken.Config{SigningKey: sessiontoken.GenerateKey(), Issuer: "betterkey", Audience: "betterkey-app"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claimsAt(now time.Time) ports.AccessClaims {
	return ports.AccessClaims{UserID: domain.NewUserID(), SessionID: domain.NewSessionID(), IssuedAt: now, ExpiresAt: now.Add(15 * time.Minute)}
}

func TestRoundTrip(t *testing.T) {
	s := newSigner(t)
	now := time.Now().Truncate(time.Second)
	c := claimsAt(now)
	tok, err := s.Issue(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Verify(tok.Reveal(), now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got.UserID != c.UserID || got.SessionID != c.SessionID || !got.ExpiresAt.Equal(c.ExpiresAt) {
		t.Fatalf("got %+v, want %+v", got, c)
	}
}

func TestRejects(t *testing.T) {
	s := newSigner(t)
	other := newSigner(t)
	now := time.Now()
	good, _ := s.Issue(claimsAt(now))
	foreign, _ := other.Issue(claimsAt(now))

	hs := jwt.NewWithClaims(jwt.SigningMethodHS384, jwt.MapClaims{"iss": "betterkey", "aud": "betterkey-app", "sub": string(domain.NewUserID()), "sid": string(domain.NewSessionID()), "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()})
	hs.Header["typ"] = "at+jwt"
	hsTok, _ := hs.SignedString([]byte("secret"))
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "x"})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)

	_, priv, _ := ed25519.GenerateKey(nil)
	eddsa := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": "betterkey", "aud": "betterkey-app", "sub": string(domain.NewUserID()), "sid": string(domain.NewSessionID()), "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()})
	eddsa.Header["typ"] = "at+jwt"
	eddsaTok, _ := eddsa.SignedString(priv)
	wrongTyp := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "betterkey", "aud": "betterkey-app", "sub": string(domain.NewUserID()), "sid": string(domain.NewSessionID()), "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()})
	wrongTypTok, _ := wrongTyp.SignedString([]byte("secret"))

	flipped := []byte(good.Reveal())
	flipped[len(flipped)-3] ^= 1

	cases := map[string]struct {
		token string
		at    time.Time
		want  error
	}{
		"expired":          {good.Reveal(), now.Add(16 * time.Minute), domain.ErrAccessTokenExpired},
		"other key":        {foreign.Reveal(), now, domain.ErrInvalidAccessToken},
		"hs384":            {hsTok, now, domain.ErrInvalidAccessToken},
		"eddsa":            {eddsaTok, now, domain.ErrInvalidAccessToken},
		"alg none":         {noneTok, now, domain.ErrInvalidAccessToken},
		"wrong typ":        {wrongTypTok, now, domain.ErrInvalidAccessToken},
		"flipped":          {string(flipped), now, domain.ErrInvalidAccessToken},
		"garbage":          {"not.a.jwt", now, domain.ErrInvalidAccessToken},
		"empty":            {"", now, domain.ErrInvalidAccessToken},
		"huge":             {strings.Repeat("a", 1<<20), now, domain.ErrInvalidAccessToken},
		"issued in future": {good.Reveal(), now.Add(-time.Minute), domain.ErrInvalidAccessToken},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Verify(tc.token, tc.at); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBadKeyConfig(t *testing.T) {
	for _, k := range []string{"", "short", strings.Repeat("A", 200), "not base64 at all but long enough to pass a length check!!"} {
		if _, err := sessiontoken.New(sessiontoken.Config{SigningKey: domain.NewSecret(k), Issuer: "i", Audience: "a"}); err == nil {
			t.Errorf("key %q accepted", k)
		} else if strings.Contains(err.Error(), k) && k != "" {
			t.Errorf("error leaks the key: %v", err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	s := newSigner(b)
	now := time.Now()
	tok, _ := s.Issue(claimsAt(now))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Verify(tok.Reveal(), now); err != nil {
			b.Fatal(err)
		}
	}
}

// Rotation with an overlap: the next key is first published as a verify key, then signs while
// the old one verifies for an access-token lifetime, then the old one goes. A key that is not
// configured, in either role, verifies nothing.
func TestKeyRotationOverlap(t *testing.T) {
	oldKey, newKey := sessiontoken.GenerateKey(), sessiontoken.GenerateKey()
	mk := func(sign domain.Secret, verify ...domain.Secret) *sessiontoken.Signer {
		t.Helper()
		s, err := sessiontoken.New(sessiontoken.Config{SigningKey: sign, VerifyKeys: verify, Issuer: "betterkey", Audience: "betterkey-app"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now().Truncate(time.Second)
	before := mk(oldKey)
	published := mk(oldKey, newKey) // step 1: every replica learns the new key
	switched := mk(newKey, oldKey)  // step 2: the new key signs, the old one still verifies
	after := mk(newKey)             // step 3: the old key is gone
	if before.KeyID() == switched.KeyID() || published.KeyID() != before.KeyID() {
		t.Fatal("key ids do not follow the signing key")
	}
	issue := func(s *sessiontoken.Signer) string {
		tok, err := s.Issue(claimsAt(now))
		if err != nil {
			t.Fatal(err)
		}
		return tok.Reveal()
	}
	oldTok, newTok := issue(before), issue(switched)
	for _, tc := range []struct {
		name  string
		s     *sessiontoken.Signer
		token string
		ok    bool
	}{
		{"old token, old replica", before, oldTok, true},
		{"old token, replica that published the new key", published, oldTok, true},
		{"old token, switched replica", switched, oldTok, true},
		{"old token after the overlap", after, oldTok, false},
		{"new token, replica that published it", published, newTok, true},
		{"new token, switched replica", switched, newTok, true},
		{"new token, replica that never heard of it", before, newTok, false},
		{"new token after the overlap", after, newTok, true},
	} {
		_, err := tc.s.Verify(tc.token, now.Add(time.Minute))
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, domain.ErrInvalidAccessToken) {
			t.Errorf("%s: %v, want INVALID_ACCESS_TOKEN", tc.name, err)
		}
	}
	if _, err := sessiontoken.New(sessiontoken.Config{SigningKey: oldKey, VerifyKeys: []domain.Secret{domain.NewSecret("short")},
		Issuer: "betterkey", Audience: "betterkey-app"}); err == nil {
		t.Error("a malformed verify key was accepted")
	}
}

// Stored keys replace the configured ones, each in its window: the configured key signs until the
// new key's SignsFrom and verifies until its own VerifiesUntil; the new key verifies as soon as
// it is installed (published before it signs).
func TestStoredKeysSignAndVerifyInTheirWindows(t *testing.T) {
	s := newSigner(t)
	conf := s.ConfiguredKey()
	t0 := time.Now().Truncate(time.Second)
	from, until := t0.Add(20*time.Second), t0.Add(20*time.Second+5*time.Minute)
	before, _ := s.Issue(claimsAt(t0))
	next := ports.AccessKey{ID: domain.NewSigningKeyID(), Material: domain.NewSigningKeyMaterial(), SignsFrom: from}
	conf.VerifiesUntil = until
	if err := s.UseKeys([]ports.AccessKey{conf, next}); err != nil {
		t.Fatal(err)
	}
	kidOf := func(tok domain.Secret) string {
		tk, _, err := jwt.NewParser().ParseUnverified(tok.Reveal(), jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		return tk.Header["kid"].(string)
	}
	pending, _ := s.Issue(claimsAt(from.Add(-time.Second)))
	after, _ := s.Issue(claimsAt(from))
	if kidOf(pending) != conf.ID || kidOf(after) != next.ID {
		t.Fatalf("kids = %s, %s; want the configured key before SignsFrom and the new key from it", kidOf(pending), kidOf(after))
	}
	if _, err := s.Verify(before.Reveal(), until.Add(-time.Second)); err != nil {
		t.Errorf("old key's token in the overlap: %v", err)
	}
	if _, err := s.Verify(before.Reveal(), until); !errors.Is(err, domain.ErrInvalidAccessToken) {
		t.Errorf("old key's token after the overlap = %v, want invalid", err)
	}
	if _, err := s.Verify(after.Reveal(), from.Add(time.Minute)); err != nil {
		t.Errorf("new key's token: %v", err)
	}
	if err := s.UseKeys([]ports.AccessKey{{ID: "x", Material: domain.NewSecret("short")}}); err == nil {
		t.Error("UseKeys took a key that is not a key")
	}
	if _, err := s.Verify(after.Reveal(), from.Add(time.Minute)); err != nil {
		t.Errorf("a refused set replaced the installed one: %v", err)
	}
	if err := s.UseKeys([]ports.AccessKey{next, next}); err == nil {
		t.Error("UseKeys took a repeated id")
	}
	if err := s.UseKeys(nil); err == nil {
		t.Fatal("an empty set after stored keys brought the configured key back")
	}
	if _, err := s.Verify(before.Reveal(), until.Add(time.Second)); err == nil {
		t.Error("the configured key verifies again after its window")
	}
}
