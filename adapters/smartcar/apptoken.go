package smartcar

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/betterkey/backend/domain"
)

// appTokenMargin is how long before its expiry an application token is replaced, so no call
// goes out with a token that dies on the way.
const appTokenMargin = 5 * time.Minute

// defaultAppTokenLifetime is what Smartcar documents (3600 s) for an answer without expires_in.
const defaultAppTokenLifetime = time.Hour

// appTokens caches v3's one application token (client_credentials at the IAM endpoint). One
// fetch runs at a time; every caller waiting for it gets its result, so a burst of calls after
// expiry costs one token request, not one each.
type appTokens struct {
	c *Client

	mu      sync.Mutex
	token   domain.Secret
	expires time.Time
}

// get returns a token that is valid for at least appTokenMargin, fetching one when needed.
func (a *appTokens) get(ctx context.Context) (domain.Secret, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.token.Empty() && a.c.now().Add(appTokenMargin).Before(a.expires) {
		return a.token, nil
	}
	t, exp, err := a.fetch(ctx)
	if err != nil {
		return domain.Secret{}, err
	}
	a.token, a.expires = t, exp
	return t, nil
}

// invalidate drops used when the vehicle API rejected it, unless another caller replaced it
// already.
func (a *appTokens) invalidate(used domain.Secret) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token.Reveal() == used.Reveal() {
		a.token, a.expires = domain.Secret{}, time.Time{}
	}
}

// fetch runs the client_credentials grant. The credentials go in the form body, as Smartcar
// documents for this endpoint; the expiry counts from before the request was sent.
func (a *appTokens) fetch(ctx context.Context) (domain.Secret, time.Time, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {a.c.cfg.ClientID},
		"client_secret": {a.c.cfg.ClientSecret.Reveal()}}
	const op = "get application token"
	start := a.c.now()
	r, err := a.c.do(ctx, call{op: op, method: http.MethodPost, url: a.c.cfg.IAMURL + "/oauth2/token",
		body: []byte(form.Encode()), form: true, bodyAuth: true, oauth: true, appToken: true,
		timeout: a.c.cfg.Timeouts.Token, maxBody: maxTokenBody})
	if err != nil {
		return domain.Secret{}, time.Time{}, err
	}
	var t tokenResponse
	if json.Unmarshal(r.body, &t) != nil || t.AccessToken == "" || t.ExpiresIn < 0 ||
		(t.TokenType != "" && !strings.EqualFold(t.TokenType, "Bearer")) {
		return domain.Secret{}, time.Time{}, &domain.UpstreamError{Err: domain.ErrUpstreamUnavailable, Op: op,
			Status: r.status, RequestID: r.requestID, Cause: errMalformedTokens}
	}
	life := defaultAppTokenLifetime
	if t.ExpiresIn > 0 {
		life = time.Duration(min(t.ExpiresIn, int64(24*time.Hour/time.Second))) * time.Second
	}
	return domain.NewSecret(t.AccessToken), start.Add(life), nil
}
