// Package sessiontoken issues and verifies BetterKey access tokens: short-lived JWTs carrying the
// user and session ids, signed with HMAC-SHA256 under a 256-bit server key. Only this service
// verifies them, so a symmetric key loses nothing and costs ~2 µs per request where Ed25519
// verification measured ~70 µs. Exactly one algorithm is accepted, and the token type header
// separates access tokens from every other JWT (RFC 9068 "at+jwt").
package sessiontoken

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

const (
	tokenType = "at+jwt"
	// leeway absorbs clock skew between replicas; access tokens are ours, so it stays small.
	leeway = 5 * time.Second
)

// Config names the signing key and the token's issuer and audience.
type Config struct {
	// SigningKey is at least 32 random bytes, base64 (std or url alphabet).
	SigningKey domain.Secret
	// VerifyKeys are further keys whose tokens still verify but that sign nothing: the key being
	// rotated out (its tokens live for one access-token lifetime), or the next key, published to
	// every replica before any replica signs with it.
	VerifyKeys []domain.Secret
	Issuer     string
	Audience   string
}

// Signer implements ports.AccessTokens and ports.AccessKeyRing. It signs and verifies with the
// configured keys until stored keys are installed; from then on only the stored keys count, each
// in its window, so that every replica that loaded the same keys makes the same decision.
type Signer struct {
	configured *keyset
	stored     atomic.Pointer[keyset]
	confKey    ports.AccessKey
	issuer     string
	audience   string
}

var (
	_ ports.AccessTokens  = (*Signer)(nil)
	_ ports.AccessKeyRing = (*Signer)(nil)
)

// keyset is one generation of keys: windows in domain terms, materials by the same index.
type keyset struct {
	windows []domain.SigningKey
	keys    [][]byte
	byID    map[string]int
}

// neverSigns is the SignsFrom of a configured verify-only key.
var neverSigns = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

func (ks *keyset) add(id string, key []byte, signsFrom, verifiesUntil time.Time) {
	ks.byID[id] = len(ks.keys)
	ks.windows = append(ks.windows, domain.SigningKey{ID: id, SignsFrom: signsFrom, VerifiesUntil: verifiesUntil})
	ks.keys = append(ks.keys, key)
}

// New builds a signer from cfg.
func New(cfg Config) (*Signer, error) {
	key, err := decodeKey(cfg.SigningKey)
	if err != nil {
		return nil, err
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("session token issuer and audience are required")
	}
	ks := &keyset{byID: map[string]int{}}
	ks.add(keyID(key), key, time.Time{}, time.Time{})
	for i, k := range cfg.VerifyKeys {
		b, err := decodeKey(k)
		if err != nil {
			return nil, fmt.Errorf("session verify key %d: %w", i+1, err)
		}
		if _, dup := ks.byID[keyID(b)]; !dup {
			ks.add(keyID(b), b, neverSigns, time.Time{})
		}
	}
	return &Signer{configured: ks, confKey: ports.AccessKey{ID: keyID(key), Material: cfg.SigningKey},
		issuer: cfg.Issuer, audience: cfg.Audience}, nil
}

// keyID is a MAC of a constant under the key, so it names the key without revealing anything
// about it. Stored keys have random ids of their own.
func keyID(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("betterkey access token key id"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// KeyID names the key that signs now, for logs and the rotation runbook.
func (s *Signer) KeyID() string {
	ks := s.keys()
	if i := domain.CurrentSigningKey(ks.windows, time.Now()); i >= 0 {
		return ks.windows[i].ID
	}
	return ""
}

// ConfiguredKey implements ports.AccessKeyRing.
func (s *Signer) ConfiguredKey() ports.AccessKey { return s.confKey }

// UseKeys implements ports.AccessKeyRing.
func (s *Signer) UseKeys(keys []ports.AccessKey) error {
	if len(keys) == 0 {
		// Once keys are stored the configured one is out for good: an emptied table (a restore,
		// a stray DELETE) must not bring back a key that may have leaked.
		if s.stored.Load() != nil {
			return errors.New("stored session signing keys: an empty set after stored keys were in use")
		}
		return nil
	}
	ks := &keyset{byID: make(map[string]int, len(keys))}
	for _, k := range keys {
		b, err := decodeKey(k.Material)
		if err != nil {
			return fmt.Errorf("stored session signing key %s: %w", k.ID, err)
		}
		if _, dup := ks.byID[k.ID]; k.ID == "" || dup {
			return fmt.Errorf("stored session signing key %q: empty or repeated id", k.ID)
		}
		ks.add(k.ID, b, k.SignsFrom, k.VerifiesUntil)
	}
	s.stored.Store(ks)
	return nil
}

func (s *Signer) keys() *keyset {
	if ks := s.stored.Load(); ks != nil {
		return ks
	}
	return s.configured
}

// GenerateKey returns a fresh random signing key in the form Config.SigningKey expects; the
// first-run server uses it when no key is configured in development.
func GenerateKey() domain.Secret {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return domain.NewSecret(base64.StdEncoding.EncodeToString(key))
}

func decodeKey(s domain.Secret) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s.Reveal()); err == nil && len(b) >= 32 && len(b) <= 128 {
			return b, nil
		}
	}
	return nil, errors.New("session signing key must be 32 to 128 random bytes in base64")
}

type claims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid"`
}

// Issue implements ports.AccessTokens.
func (s *Signer) Issue(c ports.AccessClaims) (domain.Secret, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.issuer, Audience: jwt.ClaimStrings{s.audience}, Subject: string(c.UserID),
			IssuedAt: jwt.NewNumericDate(c.IssuedAt), ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
		},
		SessionID: string(c.SessionID),
	})
	t.Header["typ"] = tokenType
	ks := s.keys()
	i := domain.CurrentSigningKey(ks.windows, c.IssuedAt)
	if i < 0 {
		return domain.Secret{}, errors.New("sign access token: no key signs at this time")
	}
	t.Header["kid"] = ks.windows[i].ID
	signed, err := t.SignedString(ks.keys[i])
	if err != nil {
		return domain.Secret{}, fmt.Errorf("sign access token: %w", err)
	}
	return domain.NewSecret(signed), nil
}

// maxTokenLen bounds the work an attacker can make us do per request.
const maxTokenLen = 2048

// Verify implements ports.AccessTokens.
func (s *Signer) Verify(token string, now time.Time) (ports.AccessClaims, error) {
	if token == "" || len(token) > maxTokenLen {
		return ports.AccessClaims{}, domain.ErrInvalidAccessToken
	}
	var c claims
	ks := s.keys()
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(s.issuer), jwt.WithAudience(s.audience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	t, err := p.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		i, ok := ks.byID[kid]
		if t.Header["typ"] != tokenType || !ok || !ks.windows[i].VerifiesAt(now) {
			return nil, errors.New("wrong token type, unknown key id or key no longer verifies")
		}
		return ks.keys[i], nil
	})
	if err != nil || !t.Valid {
		// golang-jwt validates claims only after the signature, so "expired" implies a genuine token.
		if errors.Is(err, jwt.ErrTokenExpired) {
			return ports.AccessClaims{}, fmt.Errorf("verify access token: %w", domain.ErrAccessTokenExpired)
		}
		return ports.AccessClaims{}, fmt.Errorf("verify access token: %w", domain.ErrInvalidAccessToken)
	}
	if !domain.ValidID(c.Subject) || !domain.ValidID(c.SessionID) {
		return ports.AccessClaims{}, fmt.Errorf("verify access token: ids: %w", domain.ErrInvalidAccessToken)
	}
	return ports.AccessClaims{
		UserID: domain.UserID(c.Subject), SessionID: domain.SessionID(c.SessionID),
		IssuedAt: c.IssuedAt.Time, ExpiresAt: c.ExpiresAt.Time,
	}, nil
}
