package apple

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// DefaultTokenHTTPTimeout bounds one call to Apple's token or revoke endpoint. It is longer than
// the key fetch's because a code exchange sits in the sign-in path only once per account, and a
// revocation in the deletion path, where waiting a little beats failing.
const DefaultTokenHTTPTimeout = 10 * time.Second

// The client secret and the limits on what we send and accept.
const (
	// clientSecretLifetime is far below Apple's six-month ceiling: a leaked secret is worth an
	// hour, and a short exp avoids the "expired long-lived secret" outages other backends had.
	clientSecretLifetime = time.Hour
	// clientSecretRenewBefore re-mints a secret this long before it expires, so clock skew
	// against Apple and a slow request never present an expired one.
	clientSecretRenewBefore = 10 * time.Minute
	clientSecretAudience    = "https://appleid.apple.com"
	maxTokenResponseBody    = 64 << 10
	maxAuthorizationCode    = 4 << 10
	maxOAuthErrorCode       = 64
	tokenUserAgent          = "betterkey-backend"
)

// TokenConfig is what calling Apple's token and revoke endpoints needs: where they are and the
// team's Sign in with Apple key that signs the client secret.
type TokenConfig struct {
	// TokenURL is POST /auth/token; RevokeURL is POST /auth/revoke (the simulator's in tests).
	TokenURL, RevokeURL string
	// TeamID is the iss of the client secret; KeyID is its kid, naming the key in the developer
	// account.
	TeamID, KeyID string
	// PrivateKey is the .p8 file: a PKCS#8 PEM ECDSA P-256 key. It stays a Secret so printing
	// the config never shows it.
	PrivateKey domain.Secret
	// HTTPTimeout bounds one call (default DefaultTokenHTTPTimeout, at most MaxHTTPTimeout).
	HTTPTimeout time.Duration
}

// WithDefaults fills zero values, so the config layer can print the settings in effect.
func (c TokenConfig) WithDefaults() TokenConfig {
	if c.HTTPTimeout == 0 {
		c.HTTPTimeout = DefaultTokenHTTPTimeout
	}
	return c
}

// Validate refuses a configuration that could only fail at Apple, so the server fails at startup
// instead of at the first sign-in or account deletion. Its errors never contain the key.
func (c TokenConfig) Validate() error {
	c = c.WithDefaults()
	var errs []error
	for _, e := range []struct{ name, raw string }{{"token url", c.TokenURL}, {"revoke url", c.RevokeURL}} {
		if u, err := url.Parse(e.raw); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s must be an absolute http or https url", e.name))
		}
	}
	if c.TeamID == "" {
		errs = append(errs, errors.New("team id is required"))
	}
	if c.KeyID == "" {
		errs = append(errs, errors.New("key id is required"))
	}
	if _, err := parseClientKey(c.PrivateKey); err != nil {
		errs = append(errs, err)
	}
	if c.HTTPTimeout < 0 || c.HTTPTimeout > MaxHTTPTimeout {
		errs = append(errs, fmt.Errorf("http timeout must be between 0 and %s", MaxHTTPTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("validate apple token config: %w", err)
	}
	return nil
}

// parseClientKey reads the .p8 key. golang-jwt's error is dropped on purpose: the message is
// ours and constant, so no part of the key can reach a log line.
func parseClientKey(pem domain.Secret) (*ecdsa.PrivateKey, error) {
	k, err := jwt.ParseECPrivateKeyFromPEM([]byte(pem.Reveal()))
	if err != nil || k.Curve != elliptic.P256() {
		return nil, errors.New("private key must be a pkcs#8 pem ecdsa p-256 key")
	}
	return k, nil
}

// TokenClient implements ports.AppleTokens: the code exchange that yields Apple's refresh token
// at sign-up, and the revocation account deletion must perform (App Store guideline 5.1.1(v)).
// It is safe for concurrent use.
type TokenClient struct {
	cfg  TokenConfig
	key  *ecdsa.PrivateKey
	ids  *Verifier
	http *http.Client

	mu      sync.Mutex
	secrets map[string]clientSecret // by client id
}

var _ ports.AppleTokens = (*TokenClient)(nil)

// clientSecret is a minted client_secret JWT and the times that decide its reuse.
type clientSecret struct {
	value           domain.Secret
	issued, expires time.Time
}

// NewTokenClient builds the client from cfg (defaults applied, then validated). ids verifies the
// id_token of a code exchange with its key cache, issuers, leeway and clock, and its audience
// allowlist decides which client ids may redeem codes. client may be nil; a given client is
// copied so that redirects off Apple's host are refused, and every call is bounded by
// cfg.HTTPTimeout whatever the client's own timeout.
func NewTokenClient(cfg TokenConfig, ids *Verifier, client *http.Client) (*TokenClient, error) {
	if ids == nil {
		return nil, errors.New("create apple token client: no verifier for the id_token")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	key, err := parseClientKey(cfg.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("create apple token client: %w", err)
	}
	return &TokenClient{
		cfg:     cfg,
		key:     key,
		ids:     ids,
		http:    newHTTPClient(client, cfg.HTTPTimeout),
		secrets: map[string]clientSecret{},
	}, nil
}

// now is the verifier's clock, so the secret's iat and exp and the id_token checks read the same
// time, and tests move one clock.
func (c *TokenClient) now() time.Time { return c.ids.now() }

// tokenAnswer is Apple's TokenResponse. access_token is not kept: the refresh token outlives it
// and is what revocation needs.
type tokenAnswer struct {
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
}

// Exchange implements ports.AppleTokens. The client id is checked against the allowlist before
// Apple is called, so a request cannot make us mint secrets for, or redeem codes of, a client we
// do not serve. No redirect_uri is sent: native app codes carry none, and Apple refuses one.
func (c *TokenClient) Exchange(ctx context.Context, clientID string, code domain.Secret) (ports.AppleGrant, error) {
	const op = "exchange apple authorization code"
	if !c.ids.allowsClient(clientID) {
		return ports.AppleGrant{}, fmt.Errorf("%s: %w", op, domain.Invalid("client_id", "is not an allowed apple client id"))
	}
	if code.Empty() || code.Len() > maxAuthorizationCode {
		return ports.AppleGrant{}, fmt.Errorf("%s: code is empty or too long: %w", op, domain.ErrInvalidAuthorizationCode)
	}
	secret, err := c.clientSecret(clientID)
	if err != nil {
		return ports.AppleGrant{}, fmt.Errorf("%s: %w: %w", op, domain.ErrUnavailable, err)
	}
	form := url.Values{
		"client_id":     {clientID},
		"client_secret": {secret.Reveal()},
		"code":          {code.Reveal()},
		"grant_type":    {"authorization_code"},
	}
	status, body, err := c.post(ctx, c.cfg.TokenURL, form)
	switch {
	case err != nil:
		return ports.AppleGrant{}, fmt.Errorf("%s: %w: %w", op, domain.ErrUnavailable, err)
	case status != http.StatusOK:
		return ports.AppleGrant{}, exchangeRefusal(op, status, oauthErrorCode(body))
	}
	var t tokenAnswer
	if json.Unmarshal(body, &t) != nil || t.RefreshToken == "" || t.IDToken == "" {
		return ports.AppleGrant{}, fmt.Errorf("%s: response lacks refresh_token or id_token: %w", op, domain.ErrUnavailable)
	}
	sub, err := c.ids.verifyExchangeIDToken(ctx, t.IDToken, clientID)
	if err != nil {
		return ports.AppleGrant{}, fmt.Errorf("%s: verify id_token: %w", op, err)
	}
	return ports.AppleGrant{Subject: sub, RefreshToken: domain.NewSecret(t.RefreshToken)}, nil
}

// exchangeRefusal classifies a non-200 answer to a code exchange. Only invalid_grant is the
// user's code; any other refusal means our credentials or request are wrong, which the user
// cannot fix and an operator must, so it is reported as unavailable with the OAuth code for logs.
func exchangeRefusal(op string, status int, code string) error {
	switch {
	case status/100 != 4 && code != "":
		return fmt.Errorf("%s: status %d (%s): %w", op, status, code, domain.ErrUnavailable)
	case status/100 != 4 || code == "":
		return fmt.Errorf("%s: status %d: %w", op, status, domain.ErrUnavailable)
	case code == "invalid_grant":
		return fmt.Errorf("%s: status %d: apple refused the code (%s): %w", op, status, code, domain.ErrInvalidAuthorizationCode)
	case code == "invalid_client" || code == "unauthorized_client":
		return fmt.Errorf("%s: status %d: apple refused our client credentials (%s): %w", op, status, code, domain.ErrUnavailable)
	default:
		return fmt.Errorf("%s: status %d: apple refused the request (%s): %w", op, status, code, domain.ErrUnavailable)
	}
}

// Revoke implements ports.AppleTokens. The client id is not checked against the allowlist: a
// token issued before an app id was retired must still be revocable when its owner leaves.
// Revocation is idempotent at Apple, so no failure is marked as possibly executed and a retry is
// always safe.
func (c *TokenClient) Revoke(ctx context.Context, clientID string, refreshToken domain.Secret) error {
	const op = "revoke apple token"
	if clientID == "" {
		return fmt.Errorf("%s: %w", op, domain.Invalid("client_id", "must not be empty"))
	}
	if refreshToken.Empty() {
		return fmt.Errorf("%s: %w", op, domain.Invalid("refresh token", "must not be empty"))
	}
	secret, err := c.clientSecret(clientID)
	if err != nil {
		return &domain.UpstreamError{Err: domain.ErrUnavailable, Op: op, Transient: true, Cause: err}
	}
	form := url.Values{
		"client_id":       {clientID},
		"client_secret":   {secret.Reveal()},
		"token":           {refreshToken.Reveal()},
		"token_type_hint": {"refresh_token"},
	}
	status, body, err := c.post(ctx, c.cfg.RevokeURL, form)
	switch {
	case status == http.StatusOK:
		return nil // Apple's answer has no body; an unreadable one does not undo the revocation
	case err != nil:
		return &domain.UpstreamError{Err: domain.ErrUnavailable, Op: op, Status: status, Transient: true, Cause: err}
	}
	e := &domain.UpstreamError{Err: domain.ErrUnavailable, Op: op, Status: status, Transient: true}
	if code := oauthErrorCode(body); code != "" {
		e.Type, e.Code = "oauth", code
	}
	// invalid_grant (the token was issued to another client) can never succeed with this token,
	// so account deletion goes on without it. Apple answers 200 for a token it already
	// invalidated, so anything else, invalid_request included, is Apple failing or our request
	// or credentials being wrong, which an operator can fix before a retry.
	if status/100 == 4 && e.Code == "invalid_grant" {
		e.Transient = false
	}
	return e
}

// clientSecret returns the cached client secret for clientID, minting a new one when none is
// cached or the cached one is within clientSecretRenewBefore of expiry. Reuse keeps an ECDSA
// signature off every call; the short lifetime keeps a leaked secret nearly worthless.
func (c *TokenClient) clientSecret(clientID string) (domain.Secret, error) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.secrets[clientID]; ok && !now.Before(s.issued) && s.expires.Sub(now) > clientSecretRenewBefore {
		return s.value, nil
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": c.cfg.TeamID,
		"iat": now.Unix(),
		"exp": now.Add(clientSecretLifetime).Unix(),
		"aud": clientSecretAudience,
		"sub": clientID,
	})
	delete(tok.Header, "typ") // Apple documents {"alg","kid"} only
	tok.Header["kid"] = c.cfg.KeyID
	signed, err := tok.SignedString(c.key)
	if err != nil {
		return domain.Secret{}, errors.New("sign client secret: signing failed")
	}
	for id, s := range c.secrets { // a retired client id does not pin its secret forever
		if !now.Before(s.expires) {
			delete(c.secrets, id)
		}
	}
	s := clientSecret{value: domain.NewSecret(signed), issued: now, expires: now.Add(clientSecretLifetime)}
	c.secrets[clientID] = s
	return s.value, nil
}

// post sends form to endpoint and returns the status and the body, read up to
// maxTokenResponseBody. status is 0 when no answer came; err is set when none came or its body
// could not be read whole. Errors name the endpoint and the failure, never the form.
func (c *TokenClient) post(ctx context.Context, endpoint string, form url.Values) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, errors.New("build request: invalid url")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", tokenUserAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponseBody+1))
	switch {
	case err != nil:
		return resp.StatusCode, nil, fmt.Errorf("read response: %w", err)
	case len(body) > maxTokenResponseBody:
		return resp.StatusCode, nil, fmt.Errorf("read response: body exceeds %d bytes", maxTokenResponseBody)
	}
	return resp.StatusCode, body, nil
}

// oauthErrorCode returns the error member of an OAuth error body when it looks like an OAuth
// error code (lowercase letters and underscores), and "" otherwise. error_description is never
// read: it is free text that could echo what we sent.
func oauthErrorCode(body []byte) string {
	var b struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil || b.Error == "" || len(b.Error) > maxOAuthErrorCode {
		return ""
	}
	for _, r := range b.Error {
		if (r < 'a' || r > 'z') && r != '_' {
			return ""
		}
	}
	return b.Error
}
