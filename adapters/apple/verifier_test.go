package apple_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/apple"
	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/domain"
)

func TestVerifyAcceptsAppleTokens(t *testing.T) {
	e := newEnv(t, nil)
	nonce := applesim.NonceClaim("raw-nonce")
	base := domain.AppleIdentity{
		Issuer:    applesim.Issuer,
		Subject:   applesim.DevSubject,
		Audience:  phoneAud,
		NonceHash: nonce,
		IssuedAt:  start,
		ExpiresAt: start.Add(24 * time.Hour),
	}
	with := func(f func(*domain.AppleIdentity)) domain.AppleIdentity {
		id := base
		f(&id)
		return id
	}
	tests := []struct {
		name string
		opts applesim.MintOptions
		want domain.AppleIdentity
	}{
		{
			name: "string email_verified and is_private_email",
			opts: applesim.MintOptions{Email: "x@privaterelay.appleid.com", EmailVerified: "true", IsPrivateEmail: "true"},
			want: with(func(id *domain.AppleIdentity) {
				id.Email, id.EmailVerified, id.IsPrivateEmail = "x@privaterelay.appleid.com", true, true
			}),
		},
		{
			name: "bool email_verified and is_private_email",
			opts: applesim.MintOptions{Email: "a@example.com", EmailVerified: true, IsPrivateEmail: false},
			want: with(func(id *domain.AppleIdentity) { id.Email, id.EmailVerified = "a@example.com", true }),
		},
		{
			name: "string false email_verified",
			opts: applesim.MintOptions{Email: "a@example.com", EmailVerified: "false"},
			want: with(func(id *domain.AppleIdentity) { id.Email = "a@example.com" }),
		},
		{
			name: "no email at all",
			want: base,
		},
		{
			name: "watch audience",
			opts: applesim.MintOptions{Audience: watchAud},
			want: with(func(id *domain.AppleIdentity) { id.Audience = watchAud }),
		},
		{
			name: "audience as an array",
			opts: applesim.MintOptions{ExtraClaims: map[string]any{"aud": []string{"com.other.app", watchAud}}},
			want: with(func(id *domain.AppleIdentity) { id.Audience = watchAud }),
		},
		{
			name: "exp passed but within the leeway",
			opts: applesim.MintOptions{IssuedAt: start.Add(-24*time.Hour - 30*time.Second)},
			want: with(func(id *domain.AppleIdentity) {
				id.IssuedAt, id.ExpiresAt = start.Add(-24*time.Hour-30*time.Second), start.Add(-30*time.Second)
			}),
		},
		{
			name: "iat in the future within the leeway",
			opts: applesim.MintOptions{IssuedAt: start.Add(45 * time.Second)},
			want: with(func(id *domain.AppleIdentity) {
				id.IssuedAt, id.ExpiresAt = start.Add(45*time.Second), start.Add(24*time.Hour+45*time.Second)
			}),
		},
		{
			name: "ten-minute token of 2020",
			opts: applesim.MintOptions{Lifetime: 10 * time.Minute},
			want: with(func(id *domain.AppleIdentity) { id.ExpiresAt = start.Add(10 * time.Minute) }),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.v.Verify(context.Background(), e.mint(t, tt.opts))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("identity (-got +want):\n%s", diff)
			}
		})
	}
	if got := e.fetches(); got != 1 {
		t.Errorf("JWKS fetches = %d, want 1 (lazy, then cached)", got)
	}
}

func TestVerifyRejects(t *testing.T) {
	e := newEnv(t, nil)
	kid := e.sim.CurrentKID()
	if _, err := e.v.Verify(context.Background(), e.mint(t, applesim.MintOptions{})); err != nil {
		t.Fatalf("warm-up Verify: %v", err)
	}
	pemKey, err := e.sim.PublicKeyPEM(kid)
	if err != nil {
		t.Fatal(err)
	}
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	valid := e.mint(t, applesim.MintOptions{})
	claims := func() jwt.MapClaims {
		return jwt.MapClaims{
			"iss": applesim.Issuer, "aud": phoneAud, "sub": applesim.DevSubject,
			"iat": start.Unix(), "exp": start.Add(time.Hour).Unix(), "nonce": "n",
		}
	}
	extra := func(c map[string]any) string { return e.mint(t, applesim.MintOptions{ExtraClaims: c}) }

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"alg none", craft(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, claims()), "signing algorithm not allowed"},
		{"alg none with the original signature", swapHeader(t, valid, `{"alg":"none","kid":"`+kid+`"}`), "signing algorithm not allowed"},
		{"alg missing", swapHeader(t, valid, `{"kid":"`+kid+`"}`), "signing algorithm not allowed"},
		{"alg lowercase rs256", swapHeader(t, valid, `{"alg":"rs256","kid":"`+kid+`"}`), "signing algorithm not allowed"},
		{"HS256 with Apple's public key PEM as secret", craft(t, jwt.SigningMethodHS256, pemKey, kid, claims()), "signing algorithm not allowed"},
		{"HS256 with Apple's public key DER as secret", craft(t, jwt.SigningMethodHS256, pkixDER(t, pemKey), kid, claims()), "signing algorithm not allowed"},
		{"ES256", craft(t, jwt.SigningMethodES256, ecKey, kid, claims()), "signing algorithm not allowed"},
		{"PS256", craft(t, jwt.SigningMethodPS256, otherRSA, kid, claims()), "signing algorithm not allowed"},
		{"RS512", craft(t, jwt.SigningMethodRS512, otherRSA, kid, claims()), "signing algorithm not allowed"},
		{"kid missing", craft(t, jwt.SigningMethodRS256, otherRSA, "", claims()), "key id missing"},
		{"kid unknown", e.mint(t, applesim.MintOptions{KID: "NotAppleKID"}), "signing key id is unknown"},
		{"jku header pointing elsewhere is ignored", withHeader(t, otherRSA, map[string]any{"kid": "attacker", "jku": "https://evil.example/keys"}, claims()), "signing key id is unknown"},
		{"signature byte flipped", flipSignature(t, valid), "signature is invalid"},
		{"payload changed", swapPayload(t, valid, claims()), "signature is invalid"},
		{"signed by a key not in the JWKS under a known kid", craft(t, jwt.SigningMethodRS256, otherRSA, kid, claims()), "signature is invalid"},
		{"signature stripped", strings.Join(strings.Split(valid, ".")[:2], ".") + ".", "signature is invalid"},
		{"wrong issuer", e.mint(t, applesim.MintOptions{Issuer: "https://account.apple.com"}), "issuer not allowed"},
		{"issuer missing", extra(map[string]any{"iss": nil}), "issuer not allowed"},
		{"wrong audience", e.mint(t, applesim.MintOptions{Audience: "com.attacker.app"}), "audience not allowed"},
		{"audience array without ours", extra(map[string]any{"aud": []string{"a", "b"}}), "audience not allowed"},
		{"audience missing", extra(map[string]any{"aud": nil}), "required claim missing"},
		{"expired beyond the leeway", e.mint(t, applesim.MintOptions{IssuedAt: start.Add(-24*time.Hour - 61*time.Second)}), "token has expired"},
		{"exp missing", extra(map[string]any{"exp": nil}), "required claim missing"},
		{"exp not a number", extra(map[string]any{"exp": "tomorrow"}), "token is malformed"},
		{"iat in the future beyond the leeway", e.mint(t, applesim.MintOptions{IssuedAt: start.Add(2 * time.Minute)}), "token issued in the future"},
		{"iat missing", extra(map[string]any{"iat": nil}), "issued-at claim missing"},
		{"nbf in the future", extra(map[string]any{"nbf": start.Add(time.Hour).Unix()}), "token not valid yet"},
		{"sub missing", extra(map[string]any{"sub": nil}), "subject missing"},
		{"sub empty", extra(map[string]any{"sub": ""}), "subject missing"},
		{"empty string", "", "token is malformed"},
		{"garbage", "not a jwt at all", "token is malformed"},
		{"two parts", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0", "token is malformed"},
		{"four parts", valid + ".AAAA", "token is malformed"},
		{"bad base64 everywhere", "!!!.???.***", "token is malformed"},
		{"bad base64 signature", strings.Join(strings.Split(valid, ".")[:2], ".") + ".*not*base64*", "token is malformed"},
		{"header not json", base64.RawURLEncoding.EncodeToString([]byte("{nope")) + "." + strings.SplitN(valid, ".", 2)[1], "token is malformed"},
		{"just over 16 KiB", strings.Repeat("A", 16<<10+1), "token exceeds size limit"},
		{"1 MiB", strings.Repeat("A", 1<<19) + "." + strings.Repeat("B", 1<<19-2) + ".C", "token exceeds size limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.v.Verify(context.Background(), tt.token)
			if !errors.Is(err, domain.ErrInvalidIdentityToken) {
				t.Fatalf("Verify error = %v, want domain.ErrInvalidIdentityToken (identity %+v)", err, got)
			}
			if errors.Is(err, domain.ErrUnavailable) {
				t.Errorf("Verify error = %v, must not be unavailable", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Verify error = %q, want reason %q", err, tt.reason)
			}
			if diff := cmp.Diff(got, domain.AppleIdentity{}); diff != "" {
				t.Errorf("identity on rejection (-got +want):\n%s", diff)
			}
			assertNoTokenText(t, err, tt.token)
		})
	}
	if got := e.fetches(); got != 1 {
		t.Errorf("JWKS fetches = %d, want 1 (no refetch inside the interval, none for oversize tokens)", got)
	}
}

func TestVerifyAcceptsConfiguredSecondIssuer(t *testing.T) {
	const second = "https://account.apple.com"
	e := newEnv(t, func(c *apple.Config) { c.Issuers = []string{apple.DefaultIssuer, second} })
	got, err := e.v.Verify(context.Background(), e.mint(t, applesim.MintOptions{Issuer: second}))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if diff := cmp.Diff(got.Issuer, second); diff != "" {
		t.Errorf("issuer (-got +want):\n%s", diff)
	}
}

// assertNoTokenText fails when the error repeats the token or any sizeable piece of it.
func assertNoTokenText(t *testing.T, err error, token string) {
	t.Helper()
	msg := err.Error()
	for _, part := range append(strings.Split(token, "."), token) {
		if len(part) >= 6 && strings.Contains(msg, part) {
			t.Errorf("error %q contains token text", msg)
			return
		}
	}
}

// craft signs claims with an arbitrary method and key, as an attacker would.
func craft(t *testing.T, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// withHeader signs claims with RS256 and extra header members.
func withHeader(t *testing.T, key *rsa.PrivateKey, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// swapHeader replaces the header of a genuine token, keeping payload and signature.
func swapHeader(t *testing.T, token, header string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	parts[0] = base64.RawURLEncoding.EncodeToString([]byte(header))
	return strings.Join(parts, ".")
}

// swapPayload replaces the payload of a genuine token, keeping header and signature.
func swapPayload(t *testing.T, token string, claims jwt.MapClaims) string {
	t.Helper()
	other := craft(t, jwt.SigningMethodHS256, []byte("k"), "", claims)
	parts := strings.Split(token, ".")
	parts[1] = strings.Split(other, ".")[1]
	return strings.Join(parts, ".")
}

// flipSignature flips one bit of a genuine token's signature.
func flipSignature(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[10] ^= 0x01
	parts[2] = base64.RawURLEncoding.EncodeToString(sig)
	return strings.Join(parts, ".")
}

// pkixDER turns a PEM public key into its DER bytes, another HMAC secret attackers try.
func pkixDER(t *testing.T, pemKey []byte) []byte {
	t.Helper()
	pub, err := jwt.ParseRSAPublicKeyFromPEM(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
