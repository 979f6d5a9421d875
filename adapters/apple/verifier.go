// Package apple verifies Sign in with Apple identity tokens against Apple's published keys. It is
// the only place that knows Apple's token format; the use cases see domain.AppleIdentity and the
// domain error kinds.
package apple

import (
	"context"
	"crypto/rsa"
	"errors"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// maxTokenBytes bounds what we parse; real identity tokens are about 1 KiB.
const maxTokenBytes = 16 << 10

// signingAlg is the only algorithm Apple signs identity tokens and notifications with. Pinning it
// shuts out alg=none, HMAC with the public key as secret, and any other algorithm confusion.
const signingAlg = "RS256"

// Verifier implements ports.AppleVerifier: RS256 signatures with a key picked by kid from Apple's
// key set, issuer and audience allowlists, exp and iat within the leeway, and a non-empty sub. It
// is safe for concurrent use.
type Verifier struct {
	keys     *keyCache
	parser   *jwt.Parser
	identity *policy
	exchange map[string]*policy // by client id: the id_tokens of code exchanges, see TokenClient
	now      func() time.Time
}

var _ ports.AppleVerifier = (*Verifier)(nil)

// New builds a verifier from cfg (defaults applied, then validated). client may be nil, in which
// case the verifier uses its own client with cfg.HTTPTimeout; a given client is copied so that
// redirects off Apple's host are refused without changing the caller's client. No key is fetched
// until the first token arrives, so the server starts while Apple is unreachable.
func New(cfg Config, client *http.Client) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	v := &Verifier{now: time.Now}
	clock := func() time.Time { return v.now() }
	v.keys = &keyCache{
		url:      cfg.JWKSURL,
		client:   newHTTPClient(client, cfg.HTTPTimeout),
		timeout:  cfg.HTTPTimeout,
		ttl:      cfg.CacheTTL,
		retry:    cfg.UnknownKIDRefetchInterval,
		maxStale: cfg.MaxStale,
		now:      clock,
	}
	v.parser = newSignedParser()
	v.identity = newPolicy(cfg.Issuers, cfg.Audiences, cfg.Leeway, clock, true, true, domain.ErrInvalidIdentityToken)
	v.exchange = make(map[string]*policy, len(cfg.Audiences))
	for _, aud := range cfg.Audiences {
		// Apple's token endpoint answers over TLS, so an id_token that fails these checks is
		// Apple (or our configuration) misbehaving, not the user: it is unavailable, not invalid.
		v.exchange[aud] = newPolicy(cfg.Issuers, []string{aud}, cfg.Leeway, clock, true, true, domain.ErrUnavailable)
	}
	return v, nil
}

// NewFromConfig builds a verifier with its own HTTP client, for wiring that has no shared client.
func NewFromConfig(cfg Config) (*Verifier, error) {
	return New(cfg, nil)
}

// newSignedParser pins RS256 and leaves claim checks to a policy, so the signed path, the
// development path and the future notification path share one set of claim checks.
func newSignedParser() *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods([]string{signingAlg}),
		jwt.WithStrictDecoding(),
		jwt.WithoutClaimsValidation(),
	)
}

// Verify checks an identity token and returns the identity it proves. The nonce claim is returned
// as NonceHash unchecked: the sign-in use case compares it with the nonce it issued.
func (v *Verifier) Verify(ctx context.Context, identityToken string) (domain.AppleIdentity, error) {
	var c identityClaims
	aud, err := v.verifySigned(ctx, identityToken, v.identity, &c)
	if err != nil {
		return domain.AppleIdentity{}, err
	}
	return c.identity(aud), nil
}

// allowsClient reports whether clientID is in the audience allowlist, the only client ids whose
// authorization codes the token client redeems.
func (v *Verifier) allowsClient(clientID string) bool {
	_, ok := v.exchange[clientID]
	return ok
}

// verifyExchangeIDToken checks the id_token Apple's token endpoint returned for a code issued to
// clientID and returns its subject. It applies the identity checks with clientID as the one
// audience, so a code redeemed for the watch app cannot vouch for the phone app; the nonce is not
// checked, because the code exchange is bound to the client by the client secret, not by a nonce.
func (v *Verifier) verifyExchangeIDToken(ctx context.Context, raw, clientID string) (string, error) {
	p, ok := v.exchange[clientID]
	if !ok {
		return "", errors.New("verify exchange id_token: client id is not allowlisted")
	}
	var c jwt.RegisteredClaims
	if _, err := v.verifySigned(ctx, raw, p, &c); err != nil {
		return "", err
	}
	return c.Subject, nil
}

// verifySigned checks size, algorithm, kid and signature of raw, decodes it into c and applies p.
// It returns the allowlisted audience the token names.
func (v *Verifier) verifySigned(ctx context.Context, raw string, p *policy, c jwt.Claims) (string, error) {
	if len(raw) > maxTokenBytes {
		return "", p.reject("token exceeds size limit")
	}
	var keyErr error
	tok, err := v.parser.ParseWithClaims(raw, c, func(t *jwt.Token) (any, error) {
		k, err := v.signingKey(ctx, t, p)
		if err != nil {
			keyErr = err
			return nil, err
		}
		return k, nil
	})
	if keyErr != nil {
		return "", keyErr
	}
	if err != nil {
		return "", p.reject(parseReason(tok, err))
	}
	return p.check(c)
}

// signingKey picks the key by kid. Only the kid header is read: jku, jwk, x5u and x5c would let
// the token choose its own key and are ignored. The algorithm is re-checked here so that no
// future parser option can hand an RSA public key to a non-RSA method.
func (v *Verifier) signingKey(ctx context.Context, t *jwt.Token, p *policy) (*rsa.PublicKey, error) {
	if t.Method != jwt.SigningMethodRS256 {
		return nil, p.reject("signing algorithm not allowed")
	}
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return nil, p.reject("key id missing")
	}
	k, err := v.keys.key(ctx, kid)
	switch {
	case errors.Is(err, errUnknownKID):
		return nil, p.reject("signing key id is unknown")
	case err != nil:
		return nil, err
	}
	return k, nil
}

// parseReason names why golang-jwt refused a token, without echoing any part of it.
func parseReason(tok *jwt.Token, err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "token is malformed"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "signing algorithm not allowed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if tok != nil && tok.Method != nil && tok.Method.Alg() != signingAlg {
			return "signing algorithm not allowed"
		}
		return "signature is invalid"
	default:
		return "token is malformed"
	}
}
