// Package smartcar is the Smartcar client behind ports.VehicleAPI: Connect URLs, the OAuth
// token endpoint and the vehicle API over net/http, in two generations: Client speaks v2 (the
// owner's OAuth token on every call), V3 speaks v3 (an application token and the owner's
// Smartcar user id). It is the only place that knows Smartcar's
// URLs, JSON shapes and error table (shared/reference/smartcar-api.md); callers see domain types
// and *domain.UpstreamError.
package smartcar

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Response size limits. Real answers are a few hundred bytes; a list page of vehicle ids a few
// KiB. Anything bigger is not Smartcar talking.
const (
	maxTokenBody = 16 << 10
	maxAPIBody   = 256 << 10
	maxRedirects = 3
)

// Client implements ports.VehicleAPI against Smartcar's v2 API. It is safe for concurrent use.
type Client struct {
	cfg  Config
	http *http.Client
	now  func() time.Time
}

var _ ports.VehicleAPI = (*Client)(nil)

// New builds a client from cfg (defaults applied, then validated). httpClient may be nil, in
// which case a client with its own transport is used; a given client is copied, never modified,
// and in both cases redirects may not leave the original host. Timeouts come from cfg per call.
func New(cfg Config, httpClient *http.Client) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var hc http.Client
	if httpClient != nil {
		hc = *httpClient
	}
	hc.CheckRedirect = checkRedirect
	return &Client{cfg: cfg.WithDefaults(), http: &hc, now: time.Now}, nil
}

// errOffHostRedirect refuses a redirect that would carry our credentials to another host.
var errOffHostRedirect = errors.New("follow redirect: refusing to leave the original host")

// checkRedirect follows a few same-host redirects of reads and refuses the rest. A request with
// effects is never replayed by a redirect: its 3xx answer is returned and classified instead.
func checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0]
	switch {
	case req.URL.Scheme != first.URL.Scheme || req.URL.Host != first.URL.Host:
		return errOffHostRedirect
	case first.Method != http.MethodGet:
		return http.ErrUseLastResponse
	case len(via) >= maxRedirects:
		return errors.New("follow redirect: too many redirects")
	}
	return nil
}

// call describes one outbound request.
type call struct {
	op       string // names the call in errors and logs
	method   string
	url      string
	body     []byte
	form     bool          // body is a form, authenticated with the client's Basic credentials
	bodyAuth bool          // the form carries the client credentials itself (client_credentials)
	bearer   domain.Secret // for vehicle API calls
	userID   string        // the Smartcar user a v3 call acts for (sc-user-id)
	// management authenticates with the Application Management Token (Basic "default:" + AMT).
	management bool
	timeout    time.Duration
	maxBody    int64
	effectful  bool // the call changes something upstream (MayHaveExecuted applies)
	oauth      bool // errors come in the OAuth shape
	refresh    bool // an OAuth refresh_token grant
	appToken   bool // the client_credentials grant of the v3 application token
	// bodyOptional marks calls whose 2xx status alone is the answer, so a lost or oversized body
	// does not turn a sent command into an error.
	bodyOptional bool
}

// response is a received answer with its body already read (bounded).
type response struct {
	status    int
	header    http.Header
	body      []byte
	requestID string
}

// do sends k and returns the answer when its status is 2xx. Every failure is a classified
// *domain.UpstreamError; the request body and the credentials appear in none of them.
func (c *Client) do(ctx context.Context, k call) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				wrote.Store(true)
			}
		},
	})
	req, err := c.newRequest(ctx, k)
	if err != nil {
		return nil, &domain.UpstreamError{Err: domain.ErrUpstreamRejected, Op: k.op, Cause: err}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, transportError(k, err, wrote.Load())
	}
	defer func() { _ = resp.Body.Close() }()
	r := &response{status: resp.StatusCode, header: resp.Header, requestID: resp.Header.Get("SC-Request-Id")}
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, k.maxBody+1))
	ok := r.status/100 == 2
	switch {
	case readErr != nil && ok && k.bodyOptional:
		return r, nil
	case readErr != nil && ok:
		return nil, transportError(k, readErr, true)
	case int64(len(body)) > k.maxBody:
		if ok && k.bodyOptional {
			return r, nil
		}
		if ok {
			return nil, &domain.UpstreamError{Err: domain.ErrUpstreamUnavailable, Op: k.op, Status: r.status,
				RequestID: r.requestID, PossiblyExecuted: k.effectful, Cause: errBodyTooLarge}
		}
		body = nil // classify the failure by its status alone
	case readErr == nil:
		r.body = body
	}
	if !ok {
		return nil, c.statusError(k, r)
	}
	return r, nil
}

// errBodyTooLarge names an answer that exceeded its size limit.
var errBodyTooLarge = errors.New("read response: body exceeds size limit")

// newRequest builds the HTTP request with our headers and the call's credentials.
func (c *Client) newRequest(ctx context.Context, k call) (*http.Request, error) {
	var body io.Reader
	if k.body != nil {
		body = bytes.NewReader(k.body)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, k.url, body)
	if err != nil {
		return nil, errors.New("build request: invalid url")
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	req.Header.Set("Accept", "application/json")
	switch {
	case k.form:
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if !k.bodyAuth {
			req.SetBasicAuth(c.cfg.ClientID, c.cfg.ClientSecret.Reveal())
		}
	case k.management:
		req.SetBasicAuth("default", c.cfg.ManagementToken.Reveal())
	default:
		req.Header.Set("Authorization", "Bearer "+k.bearer.Reveal())
		if k.userID != "" {
			req.Header.Set("sc-user-id", k.userID)
		}
		req.Header.Set("SC-Unit-System", "metric")
		if k.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	return req, nil
}

// apiURL joins the API origin, the v2.0 prefix, an already escaped path and a query.
func (c *Client) apiURL(path string, query url.Values) string {
	u := c.cfg.APIURL + "/v2.0" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u
}

// vehiclePath is the path of one vehicle's endpoint; the opaque id is escaped as one segment.
func vehiclePath(vehicleID, endpoint string) string {
	return "/vehicles/" + url.PathEscape(vehicleID) + endpoint
}
