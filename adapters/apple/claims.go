package apple

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/betterkey/backend/domain"
)

// policy is one set of claim checks: which issuers and audiences are accepted, the leeway, which
// registered claims are mandatory, and the domain error a failure wraps. Identity tokens use one
// policy; server-to-server notifications (same keys, primary app id as audience, no top-level
// sub) will use another over the same key cache and parser.
type policy struct {
	issuers        []string
	audiences      []string
	requireSubject bool
	invalid        *domain.Error
	validator      *jwt.Validator
}

// newPolicy builds the claim checks. now is read on every check so tests can move the clock.
func newPolicy(issuers, audiences []string, leeway time.Duration, now func() time.Time, requireExpiry, requireSubject bool, invalid *domain.Error) *policy {
	opts := []jwt.ParserOption{
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithIssuedAt(),
		jwt.WithAudience(audiences...),
	}
	if requireExpiry {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	return &policy{
		issuers:        slices.Clone(issuers),
		audiences:      slices.Clone(audiences),
		requireSubject: requireSubject,
		invalid:        invalid,
		validator:      jwt.NewValidator(opts...),
	}
}

// reject builds the error for a token that failed a check. reason is a constant chosen by the
// caller, so no part of the token ever reaches an error string or a log line.
func (p *policy) reject(reason string) error {
	return fmt.Errorf("reject apple token: %s: %w", reason, p.invalid)
}

// check applies the policy to claims whose signature (if any) was already verified, and returns
// the audience from the allowlist that the token names.
func (p *policy) check(c jwt.Claims) (string, error) {
	if err := p.validator.Validate(c); err != nil {
		return "", p.reject(claimReason(err))
	}
	if iat, err := c.GetIssuedAt(); err != nil || iat == nil {
		return "", p.reject("issued-at claim missing")
	}
	if iss, err := c.GetIssuer(); err != nil || !slices.Contains(p.issuers, iss) {
		return "", p.reject("issuer not allowed")
	}
	if p.requireSubject {
		if sub, err := c.GetSubject(); err != nil || sub == "" {
			return "", p.reject("subject missing")
		}
	}
	aud, err := c.GetAudience()
	if err != nil {
		return "", p.reject("audience not allowed")
	}
	for _, a := range aud {
		if slices.Contains(p.audiences, a) {
			return a, nil
		}
	}
	return "", p.reject("audience not allowed")
}

// claimReason names the first failed registered-claim check in a fixed order.
func claimReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token has expired"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "audience not allowed"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "required claim missing"
	default:
		return "claims are invalid"
	}
}

// identityClaims is the payload of an Apple identity token as far as we use it.
type identityClaims struct {
	jwt.RegisteredClaims
	Nonce          string   `json:"nonce"`
	Email          string   `json:"email"`
	EmailVerified  flexBool `json:"email_verified"`
	IsPrivateEmail flexBool `json:"is_private_email"`
}

// identity converts checked claims; aud is the allowlisted audience check returned.
func (c *identityClaims) identity(aud string) domain.AppleIdentity {
	id := domain.AppleIdentity{
		Issuer:         c.Issuer,
		Subject:        c.Subject,
		Audience:       aud,
		Email:          c.Email,
		EmailVerified:  bool(c.EmailVerified),
		IsPrivateEmail: bool(c.IsPrivateEmail),
		NonceHash:      c.Nonce,
	}
	if c.IssuedAt != nil {
		id.IssuedAt = c.IssuedAt.UTC()
	}
	if c.ExpiresAt != nil {
		id.ExpiresAt = c.ExpiresAt.UTC()
	}
	return id
}

// flexBool decodes Apple's boolean claims, which arrive as true/false or as "true"/"false"
// depending on the platform and year. Anything else reads as false rather than failing the
// sign-in, because these claims only describe the email address.
type flexBool bool

// UnmarshalJSON accepts a JSON boolean or a string spelling one, in any case.
func (b *flexBool) UnmarshalJSON(data []byte) error {
	v := bytes.Trim(data, `"`)
	*b = flexBool(bytes.EqualFold(v, []byte("true")))
	return nil
}
