package apple_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/apple"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/test/fakeclock"
)

func TestUnverifiedSkipsSignatureButChecksClaims(t *testing.T) {
	u, err := apple.NewUnverified(apple.Config{Audiences: []string{phoneAud}})
	if err != nil {
		t.Fatal(err)
	}
	clock := fakeclock.New(start)
	u.SetNow(clock.Now)
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": apple.DefaultIssuer, "aud": phoneAud, "sub": "dev-user", "nonce": "abc",
			"iat": start.Unix(), "exp": start.Add(time.Hour).Unix(), "email_verified": true,
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	got, err := u.Verify(context.Background(), craft(t, jwt.SigningMethodRS256, forger, "any", claims(nil)))
	if err != nil {
		t.Fatalf("Verify forged dev token: %v", err)
	}
	want := domain.AppleIdentity{
		Issuer: apple.DefaultIssuer, Subject: "dev-user", Audience: phoneAud, NonceHash: "abc",
		EmailVerified: true, IssuedAt: start, ExpiresAt: start.Add(time.Hour),
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("identity (-got +want):\n%s", diff)
	}

	rejects := []struct {
		name   string
		token  string
		reason string
	}{
		{"wrong audience", craft(t, jwt.SigningMethodRS256, forger, "k", claims(func(c jwt.MapClaims) { c["aud"] = "x" })), "audience not allowed"},
		{"wrong issuer", craft(t, jwt.SigningMethodRS256, forger, "k", claims(func(c jwt.MapClaims) { c["iss"] = "x" })), "issuer not allowed"},
		{"expired", craft(t, jwt.SigningMethodRS256, forger, "k", claims(func(c jwt.MapClaims) { c["exp"] = start.Add(-time.Hour).Unix() })), "token has expired"},
		{"no sub", craft(t, jwt.SigningMethodRS256, forger, "k", claims(func(c jwt.MapClaims) { delete(c, "sub") })), "subject missing"},
		{"garbage", "garbage", "token is malformed"},
		{"oversized", strings.Repeat("A", 1<<20), "token exceeds size limit"},
	}
	for _, tt := range rejects {
		t.Run(tt.name, func(t *testing.T) {
			_, err := u.Verify(context.Background(), tt.token)
			if !errors.Is(err, domain.ErrInvalidIdentityToken) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Verify error = %v, want rejection for %q", err, tt.reason)
			}
			assertNoTokenText(t, err, tt.token)
		})
	}
}
