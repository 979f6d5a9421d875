package smartcar

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/betterkey/backend/adapters/internal/connecturl"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// AuthorizeURL implements ports.VehicleAPI with the parameters the SDKs send (reference §1.1).
func (c *Client) AuthorizeURL(state domain.Secret, o ports.ConnectOptions) string {
	return connecturl.Build(connecturl.App{ConnectURL: c.cfg.ConnectURL, ClientID: c.cfg.ClientID, RedirectURI: c.cfg.RedirectURI,
		Scopes: c.cfg.Scopes, Mode: string(c.cfg.Mode)}, state, o)
}

// ExchangeCode implements ports.VehicleAPI: an authorization_code grant with the configured
// redirect URI, which must equal the one in the Connect URL.
func (c *Client) ExchangeCode(ctx context.Context, code domain.Secret) (domain.TokenSet, error) {
	if code.Empty() {
		return domain.TokenSet{}, domain.Invalid("code", "must not be empty")
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code.Reveal()}, "redirect_uri": {c.cfg.RedirectURI}}
	return c.grant(ctx, call{op: "exchange code"}, form)
}

// Refresh implements ports.VehicleAPI: a refresh_token grant.
func (c *Client) Refresh(ctx context.Context, refreshToken domain.Secret) (domain.TokenSet, error) {
	if refreshToken.Empty() {
		return domain.TokenSet{}, domain.Invalid("refresh token", "must not be empty")
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken.Reveal()}}
	return c.grant(ctx, call{op: "refresh token", refresh: true}, form)
}

// tokenResponse is the token endpoint's success body. refresh_expires_in is not documented;
// it is honoured should Smartcar start sending it.
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
}

// errMalformedTokens names a 200 from the token endpoint we cannot use; its body stays unread.
var errMalformedTokens = errors.New("decode token response: missing or malformed fields")

// grant posts form to the token endpoint. Expiries count from before the request was sent, so
// they are never later than Smartcar's own.
func (c *Client) grant(ctx context.Context, k call, form url.Values) (domain.TokenSet, error) {
	k.method, k.url, k.body, k.form = http.MethodPost, c.cfg.AuthURL+"/oauth/token", []byte(form.Encode()), true
	k.timeout, k.maxBody, k.effectful, k.oauth = c.cfg.Timeouts.Token, maxTokenBody, true, true
	start := c.now()
	r, err := c.do(ctx, k)
	if err != nil {
		return domain.TokenSet{}, err
	}
	var t tokenResponse
	if json.Unmarshal(r.body, &t) != nil || t.AccessToken == "" || t.RefreshToken == "" ||
		(t.TokenType != "" && !strings.EqualFold(t.TokenType, "Bearer")) || t.ExpiresIn < 0 {
		return domain.TokenSet{}, &domain.UpstreamError{Err: domain.ErrUpstreamUnavailable, Op: k.op, Status: r.status,
			RequestID: r.requestID, PossiblyExecuted: true, Cause: errMalformedTokens}
	}
	access := domain.VehicleAccessTokenLifetime
	if t.ExpiresIn > 0 {
		access = time.Duration(min(t.ExpiresIn, int64(domain.VehicleRefreshTokenLifetime/time.Second))) * time.Second
	}
	refresh := domain.VehicleRefreshTokenLifetime
	if t.RefreshExpiresIn > 0 {
		refresh = time.Duration(min(t.RefreshExpiresIn, int64(refresh/time.Second))) * time.Second
	}
	return domain.TokenSet{
		AccessToken:      domain.NewSecret(t.AccessToken),
		RefreshToken:     domain.NewSecret(t.RefreshToken),
		AccessExpiresAt:  start.Add(access),
		RefreshExpiresAt: start.Add(refresh),
	}, nil
}
