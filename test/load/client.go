package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"time"

	"github.com/betterkey/backend/adapters/apple/applesim"
)

// client speaks the app's REST API to one or more replicas (round robin is the caller's).
type client struct {
	http *http.Client
	// mint returns an identity token for sub carrying the hash of the raw nonce.
	mint func(ctx context.Context, sub, nonce string) (string, error)
}

func newClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute},
		Timeout:   30 * time.Second,
		// The Connect flow's redirects are followed by hand, hop by hop.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// outcome is one answer: its status, its problem code for an error, and the decoded body.
type outcome struct {
	status int
	code   string
	body   map[string]any
	header http.Header
	err    error
	// wire is the server's share of the latency: from the request written to the first byte of
	// the answer, without the time the request waited in the client for a connection.
	wire time.Duration
}

func (o outcome) str(key string) string {
	s, _ := o.body[key].(string)
	return s
}

// failure is o as an error when it is not want.
func (o outcome) failure(want int, what string) error {
	if o.err != nil {
		return fmt.Errorf("%s: %w", what, o.err)
	}
	if o.status != want {
		return fmt.Errorf("%s: %d %s, want %d", what, o.status, o.code, want)
	}
	return nil
}

// do sends one request; body is nil or a value sent as JSON.
func (c *client) do(ctx context.Context, method, u string, body any, bearer string, hdr map[string]string) outcome {
	var rd io.Reader
	if body != nil {
		var raw []byte
		switch b := body.(type) {
		case []byte:
			raw = b
		default:
			var err error
			if raw, err = json.Marshal(b); err != nil {
				return outcome{err: err}
			}
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return outcome{err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	var wrote, first time.Time
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest:         func(httptrace.WroteRequestInfo) { wrote = time.Now() },
		GotFirstResponseByte: func() { first = time.Now() },
	}))
	res, err := c.http.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	o := outcome{status: res.StatusCode, header: res.Header, err: err}
	if !wrote.IsZero() && first.After(wrote) {
		o.wire = first.Sub(wrote)
	}
	if len(raw) > 0 && raw[0] == '{' {
		_ = json.Unmarshal(raw, &o.body)
	}
	if res.StatusCode >= 400 {
		o.code = o.str("code")
	}
	return o
}

// session is a signed-in app install.
type session struct {
	access, refresh string
}

// signIn runs the app's sign-in: a nonce, Apple's identity token over its hash, the exchange.
func (c *client) signIn(ctx context.Context, base, sub, install string) (session, outcome) {
	n := c.do(ctx, http.MethodPost, base+"/v1/auth/nonce", nil, "", nil)
	if n.err != nil || n.status != http.StatusCreated {
		return session{}, n
	}
	tok, err := c.mint(ctx, sub, n.str("nonce"))
	if err != nil {
		return session{}, outcome{err: err}
	}
	o := c.do(ctx, http.MethodPost, base+"/v1/auth/apple", map[string]string{
		"identity_token": tok, "nonce": n.str("nonce"), "install_id": install, "device": "phone",
	}, "", nil)
	return session{access: o.str("access_token"), refresh: o.str("refresh_token")}, o
}

// link connects the Smartcar account that consents by default and returns the vehicles' ids.
func (c *client) link(ctx context.Context, base string, s session) ([]string, error) {
	o := c.do(ctx, http.MethodPost, base+"/v1/vehicles/connect", map[string]any{}, s.access, nil)
	if err := o.failure(http.StatusOK, "connect"); err != nil {
		return nil, err
	}
	callback, err := c.hop(ctx, o.str("authorize_url"))
	if err != nil {
		return nil, err
	}
	back, err := c.hop(ctx, callback)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(back)
	if err != nil || u.Query().Get("link") == "" {
		return nil, fmt.Errorf("callback sent the app to %q, want a link to confirm", back)
	}
	done := c.do(ctx, http.MethodPost, base+"/v1/vehicles/connect/complete", map[string]string{"link": u.Query().Get("link")}, s.access, nil)
	if err := done.failure(http.StatusOK, "confirm"); err != nil {
		return nil, err
	}
	var ids []string
	vs, _ := done.body["vehicles"].([]any)
	for _, v := range vs {
		if m, ok := v.(map[string]any); ok {
			if id, ok := m["id"].(string); ok {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("confirm linked no vehicle")
	}
	return ids, nil
}

// hop fetches u as a browser would and returns where it redirects.
func (c *client) hop(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	res, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusFound && res.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("GET %s: %d, want a redirect", strings.SplitN(u, "?", 2)[0], res.StatusCode)
	}
	return res.Header.Get("Location"), nil
}

// mintWith mints in process with the harness's own Apple simulator.
func mintWith(sim *applesim.Simulator) func(context.Context, string, string) (string, error) {
	return func(_ context.Context, sub, nonce string) (string, error) {
		return sim.Mint(applesim.MintOptions{Subject: sub, Audience: audience, Nonce: applesim.NonceClaim(nonce)})
	}
}

// mintOver asks a development server's built-in Apple simulator (under /sim/apple) for a token,
// as the first-run walkthrough does; for -base.
func mintOver(c *http.Client, base string) func(context.Context, string, string) (string, error) {
	cl := &client{http: c}
	return func(ctx context.Context, sub, nonce string) (string, error) {
		o := cl.do(ctx, http.MethodPost, base+"/sim/apple/sim/identity-token", map[string]string{"sub": sub, "nonce": nonce}, "", nil)
		if err := o.failure(http.StatusOK, "mint at "+base+"/sim/apple (is it a development server with simulators?)"); err != nil {
			return "", err
		}
		return o.str("identity_token"), nil
	}
}
