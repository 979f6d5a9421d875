package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// Re-login backoff after an AppRole token could not be renewed or a login failed.
const (
	minRelogin = time.Second
	maxRelogin = time.Minute
)

// logins serialises AppRole logins. Renewal alone cannot keep a token valid: the LifetimeWatcher
// hands over only a grace period before the max TTL, Vault reports TTLs in whole seconds, and an
// operator may revoke the token at any time. So a request that finds its token invalid logs in
// again itself (once, shared by every request that saw the same token), and keepToken follows the
// token that login produced instead of logging in a second time.
type logins struct {
	mu         sync.Mutex
	lastOK     time.Time        // the last successful login; keepToken spaces its logins by minRelogin
	lastFailed time.Time        // the last failed login; requests do not retry one for minRelogin
	handover   chan *api.Secret // capacity 1: the newest request-path login, for keepToken to watch
}

// authenticate sets the client token (configured token, or an AppRole login) and checks it with
// a lookup-self. It returns the auth secret to keep renewing, or nil when the token needs no
// renewal (no TTL) or cannot be renewed.
func (c *Cipher) authenticate(ctx context.Context) (*api.Secret, error) {
	if c.cfg.Token.Empty() {
		c.logins.mu.Lock()
		defer c.logins.mu.Unlock()
		return c.login(ctx)
	}
	c.client.SetToken(c.cfg.Token.Reveal())
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	self, err := c.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, classify("look up vault token", err, false)
	}
	if self == nil {
		return nil, errors.New("look up vault token: vault returned no data")
	}
	ttl, _ := self.TokenTTL()
	renewable, _ := self.TokenIsRenewable()
	switch {
	case ttl == 0: // a non-expiring token (root, or a period-less orphan)
		return nil, nil
	case !renewable:
		c.log.Warn("vault token is not renewable; requests fail once it expires", "ttl", ttl.String())
		return nil, nil
	}
	s, err := c.client.Auth().Token().RenewSelfWithContext(ctx, 0)
	if err != nil {
		return nil, classify("renew vault token", err, false)
	}
	if s == nil || s.Auth == nil {
		return nil, errors.New("renew vault token: vault returned no auth data")
	}
	return s, nil
}

// login authenticates with AppRole and installs the new token on the client. The caller holds
// c.logins.mu.
func (c *Cipher) login(ctx context.Context) (*api.Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	s, err := c.client.Logical().WriteWithContext(ctx, "auth/"+c.cfg.AppRoleMount+"/login", map[string]any{
		"role_id":   c.cfg.RoleID,
		"secret_id": c.cfg.SecretID.Reveal(),
	})
	if err == nil && (s == nil || s.Auth == nil || s.Auth.ClientToken == "") {
		err = errors.New("log in to vault with approle: vault returned no token")
	} else if err != nil {
		err = classify("log in to vault with approle", err, false)
	}
	if err != nil {
		c.logins.lastFailed = time.Now()
		return nil, err
	}
	c.client.SetToken(s.Auth.ClientToken)
	c.logins.lastOK = time.Now()
	return s, nil
}

// call runs one Vault request. When an AppRole token turns out to be invalid (expired between
// renewals, or revoked) it logs in again and retries once; that is safe for every request,
// because Vault refused the first one before doing anything.
func (c *Cipher) call(ctx context.Context, do func(context.Context) (*api.Secret, error)) (*api.Secret, error) {
	token := c.client.Token()
	s, err := do(ctx)
	if err == nil || !c.cfg.Token.Empty() || !invalidToken(err) || !c.relogin(ctx, token) {
		return s, err
	}
	return do(ctx)
}

// write and read are Logical().Write and Read through call.
func (c *Cipher) write(ctx context.Context, path string, data map[string]any) (*api.Secret, error) {
	return c.call(ctx, func(ctx context.Context) (*api.Secret, error) {
		return c.client.Logical().WriteWithContext(ctx, path, data)
	})
}

func (c *Cipher) read(ctx context.Context, path string) (*api.Secret, error) {
	return c.call(ctx, func(ctx context.Context) (*api.Secret, error) {
		return c.client.Logical().ReadWithContext(ctx, path)
	})
}

// invalidToken reports Vault's answer to an expired or revoked token ("permission denied" with
// "invalid token"), as opposed to a policy that lacks the path, which a new login cannot fix.
func invalidToken(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) || (re.StatusCode != http.StatusForbidden && re.StatusCode != http.StatusUnauthorized) {
		return false
	}
	return strings.Contains(strings.Join(re.Errors, "\n"), "invalid token")
}

// relogin replaces stale, the token a request found invalid, and reports whether the request
// should be retried. Requests that saw the same token share one login, and no login follows
// another within minRelogin, failed or not: a Vault auth outage, or a fresh token Vault refuses
// again (replication lag, a role with a tiny TTL), must not turn every request into a login,
// each of which mints a token and may use up a secret id's uses.
func (c *Cipher) relogin(ctx context.Context, stale string) bool {
	c.logins.mu.Lock()
	defer c.logins.mu.Unlock()
	if c.client.Token() != stale {
		return true // another request, or keepToken, has logged in already
	}
	if time.Since(c.logins.lastFailed) < minRelogin || time.Since(c.logins.lastOK) < minRelogin {
		return false
	}
	// The login is shared, so the caller's cancellation must not fail it for everyone; login
	// bounds it with the configured timeout.
	auth, err := c.login(context.WithoutCancel(ctx))
	if err != nil {
		c.log.Warn("vault refused the token and the approle login failed", "err", err)
		return false
	}
	c.log.Info("vault refused the token; logged in again")
	select { // only logins (under mu) send, so after the drain the send cannot block
	case <-c.logins.handover:
	default:
	}
	c.logins.handover <- auth
	return true
}

// keepToken renews the token with a LifetimeWatcher until ctx ends; with AppRole it logs in again
// when the token nears its max TTL or renewal fails, and follows a login a request made. With a
// configured token there is nothing to fall back on, so it stops and lets requests fail (as
// unavailable) once the token expires.
func (c *Cipher) keepToken(ctx context.Context, auth *api.Secret) {
	defer c.wg.Done()
	for {
		if auth == nil || auth.Auth == nil || auth.Auth.LeaseDuration == 0 {
			return // the token does not expire
		}
		next, err := c.watch(ctx, auth)
		if ctx.Err() != nil {
			return
		}
		if next != nil {
			auth = next
			continue
		}
		if !c.cfg.Token.Empty() {
			c.log.Warn("vault token can no longer be renewed; requests fail once it expires", "err", err)
			return
		}
		c.log.Info("vault token lifetime ended, logging in again", "err", err)
		if auth = c.loginAgain(ctx, auth.Auth.ClientToken); auth == nil {
			return // ctx ended
		}
	}
}

// loginAgain logs in to replace stale, retrying with backoff until it succeeds or ctx ends (nil).
// Logins are spaced by minRelogin whatever TTLs the role hands out; when a request has replaced
// stale meanwhile, its token is the one to keep.
func (c *Cipher) loginAgain(ctx context.Context, stale string) *api.Secret {
	wait := minRelogin
	for {
		c.logins.mu.Lock()
		if c.client.Token() != stale {
			select {
			case auth := <-c.logins.handover:
				c.logins.mu.Unlock()
				return auth
			default: // already taken by watch; log in anyway rather than watch nothing
			}
		}
		if d := minRelogin - time.Since(c.logins.lastOK); d > 0 {
			c.logins.mu.Unlock()
			if !sleep(ctx, d) {
				return nil
			}
			continue
		}
		auth, err := c.login(ctx)
		c.logins.mu.Unlock()
		if err == nil {
			return auth
		}
		c.log.Warn("vault approle login failed", "err", err, "retry_in", wait.String())
		if !sleep(ctx, wait) {
			return nil
		}
		wait = min(2*wait, maxRelogin)
	}
}

// sleep waits for d or until ctx ends, reporting whether the full wait elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// watch runs one LifetimeWatcher over auth until it is done (renewal failed, or the max TTL is
// near), a request-path login hands over a new token (returned), or ctx ends. The watcher
// goroutine is always stopped and waited for through c.wg.
func (c *Cipher) watch(ctx context.Context, auth *api.Secret) (*api.Secret, error) {
	w, err := c.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: auth})
	if err != nil {
		return nil, fmt.Errorf("watch vault token: %w", err)
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		w.Start() // returns once stopped or done; DoneCh is buffered
	}()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case next := <-c.logins.handover:
			return next, nil
		case err := <-w.DoneCh():
			return nil, err
		case r := <-w.RenewCh():
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				c.log.Debug("vault token renewed", "ttl_seconds", r.Secret.Auth.LeaseDuration)
			}
		}
	}
}
