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
)

// maxVehiclePages bounds Vehicles' paging, so an upstream that never ends a list cannot keep us
// looping. Smartcar's test accounts top out at 999 vehicles.
const maxVehiclePages = 100

// errMalformedBody names a 2xx answer whose body is not what the endpoint documents.
var errMalformedBody = errors.New("decode response: missing or malformed fields")

// read performs a GET on the vehicle API and decodes the answer into v.
func (c *Client) read(ctx context.Context, op string, access domain.Secret, path string, q url.Values, v any) (*response, error) {
	if access.Empty() {
		return nil, domain.Invalid("access token", "must not be empty")
	}
	r, err := c.do(ctx, call{op: op, method: http.MethodGet, url: c.apiURL(path, q), bearer: access,
		timeout: c.cfg.Timeouts.Read, maxBody: maxAPIBody})
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		return nil, &domain.UpstreamError{Err: domain.ErrUpstreamUnavailable, Op: op, Status: r.status,
			RequestID: r.requestID, Cause: errMalformedBody}
	}
	return r, nil
}

// malformed reports a 2xx answer that decoded but lacks what the endpoint promises.
func malformed(op string, r *response) error {
	return &domain.UpstreamError{Err: domain.ErrUpstreamUnavailable, Op: op, Status: r.status,
		RequestID: r.requestID, Cause: errMalformedBody}
}

// UserTokens implements ports.VehicleAPI: every v2 call authenticates with the user's token.
func (c *Client) UserTokens() bool { return true }

// User implements ports.VehicleAPI (GET /v2.0/user).
func (c *Client) User(ctx context.Context, access domain.Secret) (string, error) {
	var u struct {
		ID string `json:"id"`
	}
	r, err := c.read(ctx, "get user", access, "/user", nil, &u)
	if err != nil {
		return "", err
	}
	if u.ID == "" {
		return "", malformed("get user", r)
	}
	return u.ID, nil
}

// Vehicles implements ports.VehicleAPI (GET /v2.0/vehicles). It pages by offset only and leaves
// the page size to Smartcar, whose maximum is not documented.
func (c *Client) Vehicles(ctx context.Context, access domain.Secret) ([]string, error) {
	var ids []string
	for range maxVehiclePages {
		var page struct {
			Vehicles []string `json:"vehicles"`
			Paging   struct {
				Count  int `json:"count"`
				Offset int `json:"offset"`
			} `json:"paging"`
		}
		var q url.Values
		if len(ids) > 0 {
			q = url.Values{"offset": {strconv.Itoa(len(ids))}}
		}
		r, err := c.read(ctx, "list vehicles", access, "/vehicles", q, &page)
		if err != nil {
			return nil, err
		}
		if slices.Contains(page.Vehicles, "") {
			return nil, malformed("list vehicles", r)
		}
		ids = append(ids, page.Vehicles...)
		if len(page.Vehicles) == 0 || len(ids) >= page.Paging.Count {
			return ids, nil
		}
	}
	return nil, &domain.UpstreamError{Err: domain.ErrUpstreamUnavailable, Op: "list vehicles",
		Cause: errors.New("list vehicles: too many pages")}
}

// Permissions implements ports.VehicleAPI: GET /vehicles/{id}/permissions, paged like the
// vehicle list (paging.count is the total).
func (c *Client) Permissions(ctx context.Context, access domain.Secret, vehicleID string) ([]domain.VehiclePermission, error) {
	if vehicleID == "" {
		return nil, domain.Invalid("vehicle id", "must not be empty")
	}
	var out []domain.VehiclePermission
	for range maxVehiclePages {
		var page struct {
			Permissions []string `json:"permissions"`
			Paging      struct {
				Count int `json:"count"`
			} `json:"paging"`
		}
		var q url.Values
		if len(out) > 0 {
			q = url.Values{"offset": {strconv.Itoa(len(out))}}
		}
		r, err := c.read(ctx, "list permissions", access, "/vehicles/"+url.PathEscape(vehicleID)+"/permissions", q, &page)
		if err != nil {
			return nil, err
		}
		for _, p := range page.Permissions {
			if p == "" {
				return nil, malformed("list permissions", r)
			}
			out = append(out, domain.VehiclePermission(p))
		}
		if len(page.Permissions) == 0 || len(out) >= page.Paging.Count {
			slices.Sort(out)
			return slices.Compact(out), nil
		}
	}
	return nil, &domain.UpstreamError{Err: domain.ErrUpstreamUnavailable, Op: "list permissions",
		Cause: errors.New("list permissions: too many pages")}
}

// flexYear accepts the year as a number (what the API sends) or a numeric string (one doc
// example shows "2014").
type flexYear int

// UnmarshalJSON implements json.Unmarshaler.
func (y *flexYear) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("year is not a number")
	}
	*y = flexYear(n)
	return nil
}

// Attributes implements ports.VehicleAPI (GET /v2.0/vehicles/{id}).
func (c *Client) Attributes(ctx context.Context, grant domain.VehicleGrant, vehicleID string) (domain.VehicleAttributes, error) {
	if vehicleID == "" {
		return domain.VehicleAttributes{}, domain.Invalid("vehicle id", "must not be empty")
	}
	var a struct {
		ID    string   `json:"id"`
		Make  string   `json:"make"`
		Model string   `json:"model"`
		Year  flexYear `json:"year"`
	}
	r, err := c.read(ctx, "get vehicle attributes", grant.Access, vehiclePath(vehicleID, ""), nil, &a)
	if err != nil {
		return domain.VehicleAttributes{}, err
	}
	if a.ID != "" && a.ID != vehicleID {
		return domain.VehicleAttributes{}, malformed("get vehicle attributes", r)
	}
	return domain.VehicleAttributes{ID: vehicleID, Make: a.Make, Model: a.Model, Year: int(a.Year)}, nil
}

// opening is one entry of a /security array.
type opening struct {
	Type   string `json:"type"`
	Status string `json:"status"`
}

// LockStatus implements ports.VehicleAPI (GET /v2.0/vehicles/{id}/security). The observation
// time comes from SC-Data-Age, else SC-Fetched-At, else our receipt.
func (c *Client) LockStatus(ctx context.Context, grant domain.VehicleGrant, vehicleID string) (domain.LockStatus, error) {
	if vehicleID == "" {
		return domain.LockStatus{}, domain.Invalid("vehicle id", "must not be empty")
	}
	var s struct {
		IsLocked     *bool     `json:"isLocked"`
		Doors        []opening `json:"doors"`
		Windows      []opening `json:"windows"`
		Sunroof      []opening `json:"sunroof"`
		Storage      []opening `json:"storage"`
		ChargingPort []opening `json:"chargingPort"`
	}
	r, err := c.read(ctx, "get lock status", grant.Access, vehiclePath(vehicleID, "/security"), nil, &s)
	if err != nil {
		return domain.LockStatus{}, err
	}
	received := c.now()
	fetched := headerTime(r.header.Get("SC-Fetched-At"), received)
	return domain.LockStatus{
		Locked:        s.IsLocked,
		Doors:         openings(s.Doors),
		Windows:       openings(s.Windows),
		Sunroofs:      openings(s.Sunroof),
		Storage:       openings(s.Storage),
		ChargingPorts: openings(s.ChargingPort),
		ObservedAt:    headerTime(r.header.Get("SC-Data-Age"), fetched),
		FetchedAt:     fetched,
	}, nil
}

func openings(in []opening) []domain.Opening {
	out := make([]domain.Opening, 0, len(in))
	for _, o := range in {
		out = append(out, domain.Opening{Type: o.Type, Status: domain.OpeningStatus(strings.ToUpper(o.Status))})
	}
	return out
}

// headerTime parses an ISO-8601 header, falling back to def.
func headerTime(v string, def time.Time) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC()
	}
	return def
}

// Security implements ports.VehicleAPI (POST /v2.0/vehicles/{id}/security). A 2xx is success
// whatever its body says, except an explicit failure status: Smartcar documents
// {"status":"success"}, an OpenAPI model says SUCCESS/FAILED.
func (c *Client) Security(ctx context.Context, grant domain.VehicleGrant, vehicleID string, action domain.SecurityAction) (string, error) {
	access := grant.Access
	switch {
	case !action.Valid():
		return "", domain.Invalid("action", "must be LOCK or UNLOCK")
	case vehicleID == "":
		return "", domain.Invalid("vehicle id", "must not be empty")
	case access.Empty():
		return "", domain.Invalid("access token", "must not be empty")
	}
	body, _ := json.Marshal(map[string]string{"action": string(action)}) // cannot fail
	const op = "send security command"
	r, err := c.do(ctx, call{op: op, method: http.MethodPost, url: c.apiURL(vehiclePath(vehicleID, "/security"), nil),
		body: body, bearer: access, timeout: c.cfg.Timeouts.Command, maxBody: maxAPIBody, effectful: true, bodyOptional: true})
	if err != nil {
		return "", err
	}
	var res struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(r.body, &res) == nil && strings.EqualFold(res.Status, "failed") {
		return "", commandFailed(op, r.status, r.requestID)
	}
	return r.requestID, nil
}

// commandFailed is a command the upstream answered with an explicit failure. Which step failed
// is not said, so it may have reached the car.
func commandFailed(op string, status int, requestID string) error {
	return &domain.UpstreamError{Err: domain.ErrUpstreamUnavailable, Op: op, Status: status,
		RequestID: requestID, PossiblyExecuted: true, Cause: errors.New("upstream reported the command failed")}
}

// Disconnect implements ports.VehicleAPI (DELETE /v2.0/vehicles/{id}/application).
func (c *Client) Disconnect(ctx context.Context, grant domain.VehicleGrant, vehicleID string) error {
	access := grant.Access
	switch {
	case vehicleID == "":
		return domain.Invalid("vehicle id", "must not be empty")
	case access.Empty():
		return domain.Invalid("access token", "must not be empty")
	}
	_, err := c.do(ctx, call{op: "disconnect vehicle", method: http.MethodDelete,
		url: c.apiURL(vehiclePath(vehicleID, "/application"), nil), bearer: access,
		timeout: c.cfg.Timeouts.Read, maxBody: maxAPIBody, effectful: true, bodyOptional: true})
	return err
}
