package apple

import (
	"context"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Unverified is FOR DEVELOPMENT ONLY. It reads an identity token WITHOUT CHECKING ITS SIGNATURE,
// so anyone can forge any Apple identity with it and take over any account. It exists for
// BETTERKEY_DEV_SKIP_APPLE_VERIFY, when a developer works against tokens no real Apple key
// signed; the config layer refuses to start with it outside development. It still checks size,
// issuer, audience, exp, iat and sub, so a token that would fail those checks in production fails
// here too and development does not drift from production behaviour.
type Unverified struct {
	parser   *jwt.Parser
	identity *policy
	now      func() time.Time
}

var _ ports.AppleVerifier = (*Unverified)(nil)

// NewUnverified builds the development-only verifier from the same Config as New; only Issuers,
// Audiences and Leeway matter. Never wire it outside development (see Unverified).
func NewUnverified(cfg Config) (*Unverified, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	u := &Unverified{parser: jwt.NewParser(jwt.WithStrictDecoding()), now: time.Now}
	clock := func() time.Time { return u.now() }
	u.identity = newPolicy(cfg.Issuers, cfg.Audiences, cfg.Leeway, clock, true, true, domain.ErrInvalidIdentityToken)
	return u, nil
}

// Verify decodes the token WITHOUT verifying its signature and applies the claim checks. For
// development only.
func (u *Unverified) Verify(_ context.Context, identityToken string) (domain.AppleIdentity, error) {
	if len(identityToken) > maxTokenBytes {
		return domain.AppleIdentity{}, u.identity.reject("token exceeds size limit")
	}
	var c identityClaims
	if _, _, err := u.parser.ParseUnverified(identityToken, &c); err != nil {
		return domain.AppleIdentity{}, u.identity.reject("token is malformed")
	}
	aud, err := u.identity.check(&c)
	if err != nil {
		return domain.AppleIdentity{}, err
	}
	return c.identity(aud), nil
}
