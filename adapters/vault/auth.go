package vault

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/api"
)

// Re-login backoff after an AppRole token could not be renewed or a login failed.
const (
	minRelogin = time.Second
	maxRelogin = time.Minute
)

// authenticate sets the client token (configured token, or an AppRole login) and checks it with
// a lookup-self. It returns the auth secret to keep renewing, or nil when the token needs no
// renewal (no TTL) or cannot be renewed.
func (c *Cipher) authenticate(ctx context.Context) (*api.Secret, error) {
	if c.cfg.Token.Empty() {
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

// login authenticates with AppRole and installs the new token on the client.
func (c *Cipher) login(ctx context.Context) (*api.Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	s, err := c.client.Logical().WriteWithContext(ctx, "auth/"+c.cfg.AppRoleMount+"/login", map[string]any{
		"role_id":   c.cfg.RoleID,
		"secret_id": c.cfg.SecretID.Reveal(),
	})
	if err != nil {
		return nil, classify("log in to vault with approle", err, false)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, errors.New("log in to vault with approle: vault returned no token")
	}
	c.client.SetToken(s.Auth.ClientToken)
	return s, nil
}

// keepToken renews the token with a LifetimeWatcher until ctx ends; with AppRole it logs in again
// when the token nears its max TTL or renewal fails. With a configured token there is nothing to
// fall back on, so it stops and lets requests fail (as unavailable) once the token expires.
func (c *Cipher) keepToken(ctx context.Context, auth *api.Secret) {
	defer c.wg.Done()
	lastLogin := time.Now()
	for {
		if auth == nil || auth.Auth == nil || auth.Auth.LeaseDuration == 0 {
			return // the token does not expire
		}
		err := c.watch(ctx, auth)
		if ctx.Err() != nil {
			return
		}
		if !c.cfg.Token.Empty() {
			c.log.Warn("vault token can no longer be renewed; requests fail once it expires", "err", err)
			return
		}
		c.log.Info("vault token lifetime ended, logging in again", "err", err)
		// Never log in more than once per minRelogin, whatever TTLs the role hands out.
		if d := minRelogin - time.Since(lastLogin); d > 0 && !sleep(ctx, d) {
			return
		}
		wait := minRelogin
		for auth, err = c.login(ctx); err != nil; auth, err = c.login(ctx) {
			c.log.Warn("vault approle login failed", "err", err, "retry_in", wait.String())
			if !sleep(ctx, wait) {
				return
			}
			wait = min(2*wait, maxRelogin)
		}
		lastLogin = time.Now()
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
// near) or ctx ends; the watcher goroutine is always stopped and waited for through c.wg.
func (c *Cipher) watch(ctx context.Context, auth *api.Secret) error {
	w, err := c.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: auth})
	if err != nil {
		return fmt.Errorf("watch vault token: %w", err)
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
			return ctx.Err()
		case err := <-w.DoneCh():
			return err
		case r := <-w.RenewCh():
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				c.log.Debug("vault token renewed", "ttl_seconds", r.Secret.Auth.LeaseDuration)
			}
		}
	}
}
