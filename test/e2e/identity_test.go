package e2e

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/betterkey/backend/adapters/apple/applesim"
)

func TestSignInRefreshSignOut(t *testing.T) {
	e := startServer(t)
	e.expect(e.do("GET", "/healthz", nil, ""), http.StatusOK, "")
	e.expect(e.do("GET", "/readyz", nil, ""), http.StatusOK, "")

	s := e.signIn(applesim.NewSubject(), "install-1", "phone")
	me := e.do("GET", "/v1/me", nil, s.access)
	e.expect(me, http.StatusOK, "")
	if me.str("id") != s.userID {
		t.Fatalf("me id %q, want %q", me.str("id"), s.userID)
	}
	list := e.do("GET", "/v1/me/sessions", nil, s.access)
	e.expect(list, http.StatusOK, "")
	if n := len(list.body["sessions"].([]any)); n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}

	r := e.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": s.refresh}, "")
	e.expect(r, http.StatusOK, "")
	if r.str("refresh_token") == s.refresh || r.str("token_type") != "Bearer" {
		t.Fatalf("refresh did not rotate: %s", r.raw)
	}
	next := r.str("access_token")
	e.expect(e.do("POST", "/v1/auth/signout", nil, next), http.StatusNoContent, "")
	// Revocation is immediate: both access tokens of the session die before they expire.
	e.expect(e.do("GET", "/v1/me", nil, next), http.StatusUnauthorized, "SESSION_REVOKED")
	e.expect(e.do("GET", "/v1/me", nil, s.access), http.StatusUnauthorized, "SESSION_REVOKED")
	e.expect(e.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": r.str("refresh_token")}, ""), http.StatusUnauthorized, "SESSION_REVOKED")
}

func TestPhoneAndWatchHaveSeparateSessions(t *testing.T) {
	e := startServer(t)
	sub := applesim.NewSubject()
	phone := e.signIn(sub, "install-1", "phone")
	watch := e.signIn(sub, "install-2", "watch")
	if phone.userID != watch.userID {
		t.Fatal("one Apple subject became two users")
	}
	list := e.do("GET", "/v1/me/sessions", nil, phone.access)
	items := list.body["sessions"].([]any)
	if len(items) != 2 {
		t.Fatalf("%d sessions, want 2", len(items))
	}
	var watchID string
	for _, it := range items {
		m := it.(map[string]any)
		if m["device"] == "watch" {
			watchID = m["id"].(string)
		}
	}
	e.expect(e.do("DELETE", "/v1/me/sessions/"+watchID, nil, phone.access), http.StatusNoContent, "")
	e.expect(e.do("GET", "/v1/me", nil, watch.access), http.StatusUnauthorized, "SESSION_REVOKED")
	e.expect(e.do("GET", "/v1/me", nil, phone.access), http.StatusOK, "")
	// Another user's session id is indistinguishable from a missing one.
	other := e.signIn(applesim.NewSubject(), "install-9", "phone")
	e.expect(e.do("DELETE", "/v1/me/sessions/"+watchID, nil, other.access), http.StatusNotFound, "NOT_FOUND")
	e.expect(e.do("DELETE", "/v1/me/sessions/not-a-uuid", nil, other.access), http.StatusNotFound, "NOT_FOUND")
}

// TestSignInRejections: every failed check is a 401 with a stable code and creates nothing.
func TestSignInRejections(t *testing.T) {
	e := startServer(t)
	sub := applesim.NewSubject()
	now := time.Now()
	pemKey, err := e.apple.PublicKeyPEM(e.apple.CurrentKID())
	if err != nil {
		t.Fatal(err)
	}
	other, err := applesim.New(applesim.Options{})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		token func(nonce string) string
		nonce func(nonce string) string
		code  string
	}{
		{name: "alg none", token: func(n string) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims(sub, n, now))
			tok.Header["kid"] = e.apple.CurrentKID()
			s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}, code: "INVALID_IDENTITY_TOKEN"},
		{name: "hs256 with apple public key", token: func(n string) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(sub, n, now))
			tok.Header["kid"] = e.apple.CurrentKID()
			s, _ := tok.SignedString(pemKey)
			return s
		}, code: "INVALID_IDENTITY_TOKEN"},
		{name: "unknown kid", token: func(n string) string {
			return e.mint(sub, n, func(o *applesim.MintOptions) { o.KID = "unknown-kid" })
		}, code: "INVALID_IDENTITY_TOKEN"},
		{name: "signed by another key under a known kid", token: func(n string) string {
			s, _ := other.Mint(applesim.MintOptions{Subject: sub, Audience: audience, Nonce: applesim.NonceClaim(n), KID: e.apple.CurrentKID()})
			return s
		}, code: "INVALID_IDENTITY_TOKEN"},
		{name: "bad signature", token: func(n string) string {
			s := e.mint(sub, n, nil)
			return s[:len(s)-4] + flip(s[len(s)-4:])
		}, code: "INVALID_IDENTITY_TOKEN"},
		{name: "wrong iss", token: func(n string) string {
			return e.mint(sub, n, func(o *applesim.MintOptions) { o.Issuer = "https://evil.example" })
		}, code: "INVALID_IDENTITY_TOKEN"},
		{name: "wrong aud", token: func(n string) string {
			return e.mint(sub, n, func(o *applesim.MintOptions) { o.Audience = "com.other.app" })
		}, code: "INVALID_IDENTITY_TOKEN"},
		{name: "expired", token: func(n string) string {
			return e.mint(sub, n, func(o *applesim.MintOptions) { o.IssuedAt = now.Add(-2 * time.Hour); o.Lifetime = time.Hour })
		}, code: "INVALID_IDENTITY_TOKEN"},
		{name: "iat in the future", token: func(n string) string {
			return e.mint(sub, n, func(o *applesim.MintOptions) { o.IssuedAt = now.Add(5 * time.Minute) })
		}, code: "INVALID_IDENTITY_TOKEN"},
		{name: "missing sub", token: func(n string) string {
			return e.mint(sub, n, func(o *applesim.MintOptions) { o.ExtraClaims = map[string]any{"sub": nil} })
		}, code: "INVALID_IDENTITY_TOKEN"},
		{name: "malformed", token: func(string) string { return "not-a-jwt" }, code: "INVALID_IDENTITY_TOKEN"},
		{name: "nonce missing from request", nonce: func(string) string { return "" }, code: "INVALID_NONCE"},
		{name: "nonce wrong", nonce: func(string) string { return "some-other-nonce" }, code: "INVALID_NONCE"},
		{name: "nonce never issued", token: func(string) string {
			return e.mint(sub, "forged-nonce", nil)
		}, nonce: func(string) string { return "forged-nonce" }, code: "INVALID_NONCE"},
		{name: "token without nonce claim", token: func(n string) string {
			return e.mint(sub, n, func(o *applesim.MintOptions) { o.Nonce = "" })
		}, code: "INVALID_NONCE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := e.nonce()
			tok := e.mint(sub, n, nil)
			if tc.token != nil {
				tok = tc.token(n)
			}
			sent := n
			if tc.nonce != nil {
				sent = tc.nonce(n)
			}
			r := e.do("POST", "/v1/auth/apple", map[string]string{"identity_token": tok, "nonce": sent, "install_id": "i", "device": "phone"}, "")
			e.expect(r, http.StatusUnauthorized, tc.code)
			if strings.Contains(r.raw, tok) {
				t.Fatal("the response echoes the token")
			}
		})
	}
	if u, s := e.count("users"), e.count("sessions"); u != 0 || s != 0 {
		t.Fatalf("rejected sign-ins created %d users and %d sessions", u, s)
	}

	t.Run("nonce already used", func(t *testing.T) {
		n := e.nonce()
		body := map[string]string{"identity_token": e.mint(sub, n, nil), "nonce": n, "install_id": "i", "device": "phone"}
		e.expect(e.do("POST", "/v1/auth/apple", body, ""), http.StatusOK, "")
		e.expect(e.do("POST", "/v1/auth/apple", body, ""), http.StatusUnauthorized, "INVALID_NONCE")
		if s := e.count("sessions"); s != 1 {
			t.Fatalf("replay created a session: %d", s)
		}
	})
	t.Run("1 MiB token", func(t *testing.T) {
		big := `{"identity_token":"` + strings.Repeat("A", 1<<20) + `","nonce":"x","install_id":"i","device":"phone"}`
		r := e.do("POST", "/v1/auth/apple", big, "")
		if r.status != http.StatusRequestEntityTooLarge && r.status != http.StatusUnauthorized {
			t.Fatalf("got %d", r.status)
		}
		e.expect(e.do("GET", "/healthz", nil, ""), http.StatusOK, "")
	})
	t.Run("malformed body", func(t *testing.T) {
		e.expect(e.do("POST", "/v1/auth/apple", `{"identity_token":`, ""), http.StatusBadRequest, "VALIDATION_FAILED")
		e.expect(e.do("POST", "/v1/auth/apple", map[string]string{"identity_token": "x", "nonce": "y", "install_id": "i", "device": "tablet"}, ""), http.StatusBadRequest, "VALIDATION_FAILED")
	})
}

func claims(sub, rawNonce string, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{"iss": applesim.Issuer, "aud": audience, "sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "nonce": applesim.NonceClaim(rawNonce)}
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func TestRefreshRules(t *testing.T) {
	e := startServer(t)
	e.expect(e.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": "unknown"}, ""), http.StatusUnauthorized, "INVALID_REFRESH_TOKEN")
	e.expect(e.do("POST", "/v1/auth/refresh", map[string]string{}, ""), http.StatusUnauthorized, "INVALID_REFRESH_TOKEN")

	s := e.signIn(applesim.NewSubject(), "install-1", "phone")
	r := e.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": s.refresh}, "")
	e.expect(r, http.StatusOK, "")
	// Reuse of the rotated token revokes the session, including the newest pair.
	e.expect(e.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": s.refresh}, ""), http.StatusUnauthorized, "REFRESH_TOKEN_REUSED")
	e.expect(e.do("GET", "/v1/me", nil, r.str("access_token")), http.StatusUnauthorized, "SESSION_REVOKED")
	e.expect(e.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": r.str("refresh_token")}, ""), http.StatusUnauthorized, "SESSION_REVOKED")

	// An access token or an Apple identity token is not a refresh token, and vice versa.
	s2 := e.signIn(applesim.NewSubject(), "install-2", "phone")
	e.expect(e.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": s2.access}, ""), http.StatusUnauthorized, "INVALID_REFRESH_TOKEN")
	e.expect(e.do("GET", "/v1/me", nil, s2.refresh), http.StatusUnauthorized, "INVALID_ACCESS_TOKEN")
	e.expect(e.do("GET", "/v1/me", nil, e.mint(applesim.NewSubject(), "n", nil)), http.StatusUnauthorized, "INVALID_ACCESS_TOKEN")
	e.expect(e.do("GET", "/v1/me", nil, ""), http.StatusUnauthorized, "UNAUTHENTICATED")
}

// TestParallelRefreshExactlyOneWins fires many refreshes of one token at once at PostgreSQL.
func TestParallelRefreshExactlyOneWins(t *testing.T) {
	e := startServer(t)
	s := e.signIn(applesim.NewSubject(), "install-1", "phone")
	const n = 20
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			statuses[i] = e.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": s.refresh}, "").status
		})
	}
	wg.Wait()
	ok := 0
	for _, st := range statuses {
		switch st {
		case http.StatusOK:
			ok++
		case http.StatusUnauthorized:
		default:
			t.Fatalf("unexpected status %d", st)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d parallel refreshes succeeded, want exactly 1", ok, n)
	}
}
