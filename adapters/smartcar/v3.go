package smartcar

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Signal codes of Smartcar v3 that make up a lock status (reference §2.4).
const (
	signalIsLocked = "closure-islocked"
	signalDoors    = "closure-doors"
	signalWindows  = "closure-windows"
)

// maxSignalPages bounds the paging of a vehicle's signal list.
const maxSignalPages = 10

// V3 implements ports.VehicleAPI against Smartcar's API v3: the vehicle calls authenticate as
// the application (a client-credentials token, cached) and name the owner with sc-user-id, so a
// linked connection needs no user token afterwards. Connect, the token grants and the link-time
// reads of the user, the vehicle list and the granted permissions are v2's, with the Connect
// grant's token: v3 documents no equivalent of them. Disconnect goes through the Management API
// with the Application Management Token. It is safe for concurrent use.
type V3 struct {
	*Client
	app *appTokens
}

var _ ports.VehicleAPI = (*V3)(nil)

// NewV3 builds a v3 client from cfg (its API is taken to be v3). httpClient is treated as in New.
func NewV3(cfg Config, httpClient *http.Client) (*V3, error) {
	cfg.API = APIv3
	c, err := New(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	return &V3{Client: c, app: &appTokens{c: c}}, nil
}

// NewAPI builds the client of cfg.API: a *Client for v2 (the default), a *V3 for v3.
func NewAPI(cfg Config, httpClient *http.Client) (ports.VehicleAPI, error) {
	if cfg.WithDefaults().API == APIv3 {
		return NewV3(cfg, httpClient)
	}
	return New(cfg, httpClient)
}

// UserTokens implements ports.VehicleAPI: v3 vehicle calls act as the application.
func (c *V3) UserTokens() bool { return false }

// v3URL joins the v3 vehicle API origin, the /v3 prefix and an already escaped path.
func (c *V3) v3URL(path string) string { return c.cfg.VehicleURL + "/v3" + path }

// send runs k as the application for the Smartcar user. A 401 means our application token was
// refused (expired early, rotated): it is replaced and the call sent once more, which is safe
// for commands too, since an unauthenticated request never reaches the car. A second 401 is our
// misconfiguration, never the owner's grant.
func (c *V3) send(ctx context.Context, k call, user string) (*response, error) {
	if user == "" {
		return nil, domain.Invalid("smartcar user id", "must not be empty")
	}
	k.userID = user
	for attempt := 0; ; attempt++ {
		token, err := c.app.get(ctx)
		if err != nil {
			return nil, err
		}
		k.bearer = token
		r, err := c.do(ctx, k)
		if u := domain.AsUpstream(err); u != nil && u.Status == http.StatusUnauthorized {
			c.app.invalidate(token)
			if attempt == 0 {
				continue
			}
			u.Err, u.Transient = domain.ErrUpstreamRejected, false
		}
		return r, err
	}
}

// get GETs a v3 path as the application for the user (Client.read is the v2 one, with the
// user's token).
func (c *V3) get(ctx context.Context, op, user, path string) (*response, error) {
	return c.send(ctx, call{op: op, method: http.MethodGet, url: c.v3URL(path), timeout: c.cfg.Timeouts.Read,
		maxBody: maxAPIBody}, user)
}

// resource is a v3 JSON:API-style object: a vehicle, a signal or a command execution.
type resource struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Attributes json.RawMessage `json:"attributes"`
	Meta       resourceMeta    `json:"meta"`
}

// resourceMeta carries a signal's times: when Smartcar retrieved it and when the car recorded it.
type resourceMeta struct {
	RetrievedAt  json.RawMessage `json:"retrievedAt"`
	OEMUpdatedAt json.RawMessage `json:"oemUpdatedAt"`
}

// decodeResource reads a single object, bare (as Smartcar's SDK tests show it) or wrapped in
// "data".
func decodeResource(b []byte) (resource, bool) {
	var w struct {
		resource
		Data *resource `json:"data"`
	}
	if json.Unmarshal(b, &w) != nil {
		return resource{}, false
	}
	if w.Data != nil {
		return *w.Data, true
	}
	return w.resource, w.ID != "" || w.Attributes != nil
}

// Attributes implements ports.VehicleAPI (GET /v3/vehicles/{id}).
func (c *V3) Attributes(ctx context.Context, grant domain.VehicleGrant, vehicleID string) (domain.VehicleAttributes, error) {
	const op = "get vehicle attributes"
	if vehicleID == "" {
		return domain.VehicleAttributes{}, domain.Invalid("vehicle id", "must not be empty")
	}
	r, err := c.get(ctx, op, grant.SmartcarUserID, vehiclePath(vehicleID, ""))
	if err != nil {
		return domain.VehicleAttributes{}, err
	}
	res, ok := decodeResource(r.body)
	var a struct {
		Make  string   `json:"make"`
		Model string   `json:"model"`
		Year  flexYear `json:"year"`
	}
	if !ok || (res.ID != "" && res.ID != vehicleID) || json.Unmarshal(res.Attributes, &a) != nil {
		return domain.VehicleAttributes{}, malformed(op, r)
	}
	return domain.VehicleAttributes{ID: vehicleID, Make: a.Make, Model: a.Model, Year: int(a.Year)}, nil
}

// signal is a decoded v3 signal.
type signal struct {
	code       string
	body       json.RawMessage
	failed     *signalError // the car could not report it
	observedAt time.Time    // when the car recorded it (zero: unknown)
	fetchedAt  time.Time    // when Smartcar retrieved it (zero: unknown)
}

type signalError struct{ Type, Code string }

// decodeSignal reads a signal resource's attributes and times.
func decodeSignal(res resource) (signal, bool) {
	var a struct {
		Code   string `json:"code"`
		Status struct {
			Value string `json:"value"`
			Error *struct {
				Type string `json:"type"`
				Code string `json:"code"`
			} `json:"error"`
		} `json:"status"`
		Body json.RawMessage `json:"body"`
	}
	if json.Unmarshal(res.Attributes, &a) != nil || a.Code == "" {
		return signal{}, false
	}
	s := signal{code: a.Code, body: a.Body, observedAt: firstTime(res.Meta.OEMUpdatedAt),
		fetchedAt: firstTime(res.Meta.RetrievedAt)}
	if strings.EqualFold(a.Status.Value, "ERROR") || a.Status.Error != nil {
		s.failed = &signalError{}
		if a.Status.Error != nil {
			s.failed.Type, s.failed.Code = identifier(a.Status.Error.Type), identifier(a.Status.Error.Code)
		}
	}
	return s, true
}

// closureSignals are the signals a lock status is made of.
var closureSignals = []string{signalIsLocked, signalDoors, signalWindows}

// signals reads the vehicle's closure signals from its signal list (GET
// /v3/vehicles/{id}/signals), following the list's next links on the same origin until the list
// ends or every closure signal is in: a car reports dozens of signals, and each page is a call
// against Smartcar's per-vehicle rate limit.
func (c *V3) signals(ctx context.Context, op, user, vehicleID string) (map[string]signal, *response, error) {
	out := map[string]signal{}
	path := vehiclePath(vehicleID, "/signals")
	var last *response
	for range maxSignalPages {
		r, err := c.get(ctx, op, user, path)
		if err != nil {
			return nil, nil, err
		}
		last = r
		var page struct {
			Data  []resource `json:"data"`
			Links struct {
				Next string `json:"next"`
			} `json:"links"`
		}
		if json.Unmarshal(r.body, &page) != nil {
			return nil, nil, malformed(op, r)
		}
		for _, res := range page.Data {
			if s, ok := decodeSignal(res); ok && slices.Contains(closureSignals, s.code) {
				out[s.code] = s
			}
		}
		if page.Links.Next == "" || len(out) == len(closureSignals) {
			return out, last, nil
		}
		next, ok := c.samePath(page.Links.Next)
		if !ok || next == path {
			return nil, nil, malformed(op, r)
		}
		path = next
	}
	return nil, nil, &domain.UpstreamError{Err: domain.ErrUpstreamUnavailable, Op: op,
		Cause: errors.New("list signals: too many pages")}
}

// samePath turns a next link into a path below /v3 when it stays on the vehicle API's origin; a
// link elsewhere would carry our application token away. Relative links are relative to /v3, as
// the "self" links in Smartcar's examples are.
func (c *V3) samePath(link string) (string, bool) {
	u, err := url.Parse(link)
	if err != nil {
		return "", false
	}
	p := u.EscapedPath()
	if u.IsAbs() {
		base, err := url.Parse(c.cfg.VehicleURL)
		if err != nil || u.Scheme != base.Scheme || u.Host != base.Host {
			return "", false
		}
		var ok bool
		if p, ok = strings.CutPrefix(p, strings.TrimRight(base.EscapedPath(), "/")+"/v3"); !ok {
			return "", false
		}
	}
	if !strings.HasPrefix(p, "/vehicles/") {
		return "", false
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p, true
}

// LockStatus implements ports.VehicleAPI from the vehicle's closure signals: closure-islocked,
// and the doors and windows when the car reports them. A lock signal the car could not read is
// that failure, classified as the v2 error of the same type and code would be.
func (c *V3) LockStatus(ctx context.Context, grant domain.VehicleGrant, vehicleID string) (domain.LockStatus, error) {
	const op = "get lock status"
	if vehicleID == "" {
		return domain.LockStatus{}, domain.Invalid("vehicle id", "must not be empty")
	}
	sigs, r, err := c.signals(ctx, op, grant.SmartcarUserID, vehicleID)
	if err != nil {
		return domain.LockStatus{}, err
	}
	received := c.now()
	st := domain.LockStatus{FetchedAt: received, ObservedAt: received}
	if s, ok := sigs[signalIsLocked]; ok {
		if s.failed != nil {
			cl := apiClass(s.failed.Type, s.failed.Code, r.status)
			return domain.LockStatus{}, &domain.UpstreamError{Err: cl.err, Op: op, Status: r.status, Type: s.failed.Type,
				Code: s.failed.Code, RequestID: r.requestID, Transient: cl.temporary}
		}
		locked, ok := lockedValue(s.body)
		if !ok {
			return domain.LockStatus{}, malformed(op, r)
		}
		st.Locked = &locked
		if !s.fetchedAt.IsZero() && s.fetchedAt.Before(received) {
			st.FetchedAt = s.fetchedAt
		}
		st.ObservedAt = st.FetchedAt
		if !s.observedAt.IsZero() && s.observedAt.Before(st.FetchedAt) {
			st.ObservedAt = s.observedAt
		}
	}
	st.Doors = grid(sigs[signalDoors])
	st.Windows = grid(sigs[signalWindows])
	return st, nil
}

// lockedValue reads a lock signal's body {"value": …} as the webhook decoder reads it.
func lockedValue(body json.RawMessage) (bool, bool) {
	return lockValue(parseObject(body)["value"])
}

// grid reads a per-opening signal body {"values":[{"row","column","isOpen"}…]} into openings
// named as v2 names them (row 0 is the front, column 0 the left).
func grid(s signal) []domain.Opening {
	var b struct {
		Values []struct {
			Row    int   `json:"row"`
			Column int   `json:"column"`
			IsOpen *bool `json:"isOpen"`
		} `json:"values"`
	}
	if s.failed != nil || json.Unmarshal(s.body, &b) != nil {
		return []domain.Opening{}
	}
	out := make([]domain.Opening, 0, len(b.Values))
	for _, v := range b.Values {
		status := domain.OpeningStatus("UNKNOWN")
		if v.IsOpen != nil {
			status = "CLOSED"
			if *v.IsOpen {
				status = "OPEN"
			}
		}
		out = append(out, domain.Opening{Type: openingName(v.Row, v.Column), Status: status})
	}
	return out
}

func openingName(row, column int) string {
	names := [2][2]string{{"frontLeft", "frontRight"}, {"backLeft", "backRight"}}
	if row >= 0 && row < 2 && column >= 0 && column < 2 {
		return names[row][column]
	}
	return "row" + strconv.Itoa(row) + "column" + strconv.Itoa(column)
}

// Security implements ports.VehicleAPI (POST /v3/vehicles/{id}/commands/security/lock or
// /unlock, no body). 200 is the synchronous answer: its execution status decides. 202 means the
// command is still running at the car: it counts as done only once the lock signal shows the
// requested state, recorded after the command was sent; until the command timeout it is an
// unknown outcome, which a later webhook may settle.
func (c *V3) Security(ctx context.Context, grant domain.VehicleGrant, vehicleID string, action domain.SecurityAction) (string, error) {
	const op = "send security command"
	switch {
	case !action.Valid():
		return "", domain.Invalid("action", "must be LOCK or UNLOCK")
	case vehicleID == "":
		return "", domain.Invalid("vehicle id", "must not be empty")
	}
	start := c.now()
	deadline := start.Add(c.cfg.Timeouts.Command)
	r, err := c.send(ctx, call{op: op, method: http.MethodPost,
		url:     c.v3URL(vehiclePath(vehicleID, "/commands/security/"+strings.ToLower(string(action)))),
		timeout: c.cfg.Timeouts.Command, maxBody: maxAPIBody, effectful: true, bodyOptional: true}, grant.SmartcarUserID)
	if err != nil {
		return "", err
	}
	id := r.requestID
	res, _ := decodeResource(r.body)
	var a struct {
		Status struct {
			Value string `json:"value"`
		} `json:"status"`
	}
	_ = json.Unmarshal(res.Attributes, &a)
	if id == "" {
		id = identifier(res.ID)
	}
	switch v := strings.ToUpper(a.Status.Value); {
	case v == "FAILED" || v == "ERROR":
		return "", commandFailed(op, r.status, id)
	case r.status == http.StatusAccepted && v != "SUCCESS":
		if err := c.confirm(ctx, grant.SmartcarUserID, vehicleID, action == domain.SecurityLock, start, deadline); err != nil {
			err.Op, err.RequestID = op, id
			return "", err
		}
	}
	return id, nil
}

// errUnconfirmed names a long-running command whose effect the car never reported in time.
var errUnconfirmed = errors.New("long-running command not confirmed by the vehicle's lock state")

// confirm waits for the lock signal to report locked, recorded no earlier than sent, checking
// every ConfirmInterval (longer when the upstream asks) until deadline or ctx ends. A read that
// cannot succeed (no read_security, a revoked grant) ends the wait at once. Every failure says
// the command may have executed.
func (c *V3) confirm(ctx context.Context, user, vehicleID string, locked bool, sent, deadline time.Time) *domain.UpstreamError {
	unconfirmed := func(cause error) *domain.UpstreamError {
		return &domain.UpstreamError{Err: domain.ErrUpstreamTimeout, Status: http.StatusAccepted, Transient: true,
			PossiblyExecuted: true, Cause: errors.Join(errUnconfirmed, cause)}
	}
	for {
		wait := c.cfg.ConfirmInterval
		r, err := c.get(ctx, "confirm security command", user, vehiclePath(vehicleID, "/signals/"+signalIsLocked))
		if err == nil {
			res, _ := decodeResource(r.body)
			if s, ok := decodeSignal(res); ok && s.failed == nil {
				if got, ok := lockedValue(s.body); ok && got == locked && (s.observedAt.IsZero() || !s.observedAt.Before(sent)) {
					return nil
				}
			}
		} else if u := domain.AsUpstream(err); u == nil || !u.Temporary() {
			return unconfirmed(err)
		} else if u.RetryAfter > wait {
			wait = u.RetryAfter
		}
		if !c.now().Add(wait).Before(deadline) {
			return unconfirmed(nil)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return unconfirmed(ctx.Err())
		case <-t.C:
		}
	}
}

// Disconnect implements ports.VehicleAPI through the Management API (DELETE
// /v2.0/management/connections?user_id=&vehicle_id=, Basic "default:" + AMT): the v3 way to
// end this application's access to one vehicle of one user. A connection already gone is
// success: the answer lists what was deleted, and nothing is fine.
func (c *V3) Disconnect(ctx context.Context, grant domain.VehicleGrant, vehicleID string) error {
	switch {
	case vehicleID == "":
		return domain.Invalid("vehicle id", "must not be empty")
	case grant.SmartcarUserID == "":
		return domain.Invalid("smartcar user id", "must not be empty")
	}
	q := url.Values{"user_id": {grant.SmartcarUserID}, "vehicle_id": {vehicleID}}
	_, err := c.do(ctx, call{op: "disconnect vehicle", method: http.MethodDelete,
		url: c.cfg.ManagementURL + "/v2.0/management/connections?" + q.Encode(), management: true,
		timeout: c.cfg.Timeouts.Read, maxBody: maxAPIBody, effectful: true, bodyOptional: true})
	if u := domain.AsUpstream(err); u != nil && (u.Status == http.StatusUnauthorized || u.Status == http.StatusForbidden) {
		u.Err, u.Transient = domain.ErrUpstreamRejected, false // our management token, not the owner's grant
	}
	return err
}
