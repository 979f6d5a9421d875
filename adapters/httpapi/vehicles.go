package httpapi

import (
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/betterkey/backend/app/vehiclelink"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

type connectRequest struct {
	Make         string `json:"make"`
	SingleSelect bool   `json:"single_select"`
}

func (a *api) startConnect(c *gin.Context) {
	var req connectRequest
	if !a.bindJSON(c, &req, bodyOptional) {
		return
	}
	if len(req.Make) > 64 {
		a.fail(c, domain.Invalid("make", "is at most 64 characters"))
		return
	}
	u, exp, err := a.Vehicles.StartConnect(c.Request.Context(), principal(c).UserID, ports.ConnectOptions{Make: req.Make, SingleSelect: req.SingleSelect})
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"authorize_url": u, "expires_at": exp.UTC()})
}

// smartcarCallback is Smartcar's redirect target. It always answers with a redirect to the app,
// carrying status=pending, code=CONFIRM_REQUIRED and the link token the app confirms with
// (POST /v1/vehicles/connect/complete), or status=error and a stable code; nothing of the
// upstream's text or of the code and state travels on.
func (a *api) smartcarCallback(c *gin.Context) {
	q := c.Request.URL.Query()
	res, err := a.Vehicles.Callback(c.Request.Context(), vehiclelink.CallbackInput{
		State: domain.NewSecret(q.Get("state")), Code: domain.NewSecret(q.Get("code")),
		Error: q.Get("error"), ErrorDescription: q.Get("error_description"),
	})
	v := url.Values{}
	if err != nil {
		p := problemFor(err, requestID(c))
		if p.Status >= 500 {
			a.log.ErrorContext(c.Request.Context(), "smartcar callback failed", slog.String("request_id", p.RequestID), slog.String("error", err.Error()))
		}
		c.Set(errorCodeKey, p.Code)
		v.Set("status", "error")
		v.Set("code", p.Code)
	} else {
		v.Set("status", "pending")
		v.Set("code", "CONFIRM_REQUIRED")
		v.Set("link", res.Link.Reveal())
	}
	target := a.opts.AppReturnURL
	if u, perr := url.Parse(target); perr == nil {
		qq := u.Query()
		for k := range v {
			qq.Set(k, v.Get(k))
		}
		u.RawQuery = qq.Encode()
		target = u.String()
	}
	c.Redirect(http.StatusFound, target)
}

type completeConnectRequest struct {
	Link string `json:"link"`
}

// completeConnect turns the pending link of a Connect callback into a connection of the signed-in
// user, and answers with the vehicles it linked, shaped as in the vehicle list.
func (a *api) completeConnect(c *gin.Context) {
	var req completeConnectRequest
	if !a.bindJSON(c, &req, bodyRequired) {
		return
	}
	res, err := a.Vehicles.CompleteConnect(c.Request.Context(), principal(c).UserID, domain.NewSecret(req.Link))
	if err != nil {
		a.fail(c, err)
		return
	}
	out := make([]vehicleResponse, 0, len(res.Vehicles))
	for _, v := range res.Views() {
		out = append(out, newVehicleResponse(v))
	}
	c.JSON(http.StatusOK, gin.H{"vehicles": out})
}

// vehicleResponse is a vehicle as the app sees it; it has no field that could carry a token.
type vehicleResponse struct {
	ID           string   `json:"id"`
	Make         string   `json:"make"`
	Model        string   `json:"model"`
	Year         int      `json:"year"`
	Status       string   `json:"status"`
	Capabilities []string `json:"capabilities"`
}

// capabilities says what the app may offer, from the scopes the owner granted.
func capabilities(scopes []string) []string {
	out := []string{}
	for _, s := range scopes {
		p, _ := domain.ParseScope(s)
		switch p {
		case domain.PermissionControlSecurity:
			out = append(out, "lock", "unlock")
		case domain.PermissionReadSecurity:
			out = append(out, "lock_status")
		case domain.PermissionReadVehicleInfo:
			out = append(out, "vehicle_info")
		}
	}
	return out
}

func newVehicleResponse(v domain.VehicleView) vehicleResponse {
	return vehicleResponse{ID: string(v.ID), Make: v.Make, Model: v.Model, Year: v.Year,
		Status: string(v.ConnectionStatus), Capabilities: capabilities(v.Scopes)}
}

func (a *api) listVehicles(c *gin.Context) {
	list, err := a.Vehicles.Vehicles(c.Request.Context(), principal(c).UserID)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := make([]vehicleResponse, 0, len(list))
	for _, v := range list {
		out = append(out, newVehicleResponse(v))
	}
	c.JSON(http.StatusOK, gin.H{"vehicles": out})
}

func (a *api) getVehicle(c *gin.Context) {
	v, err := a.Vehicles.Vehicle(c.Request.Context(), principal(c).UserID, domain.VehicleID(c.Param("id")))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, newVehicleResponse(v))
}

type openingResponse struct {
	Type   string `json:"type"`
	Status string `json:"status"`
}

type statusResponse struct {
	VehicleID  string            `json:"vehicle_id"`
	Locked     *bool             `json:"locked,omitempty"`
	Doors      []openingResponse `json:"doors,omitempty"`
	Windows    []openingResponse `json:"windows,omitempty"`
	ObservedAt time.Time         `json:"observed_at"`
	FetchedAt  time.Time         `json:"fetched_at"`
	Source     string            `json:"source"`
}

func openings(in []domain.Opening) []openingResponse {
	out := make([]openingResponse, 0, len(in))
	for _, o := range in {
		out = append(out, openingResponse{Type: o.Type, Status: string(o.Status)})
	}
	return out
}

func (a *api) vehicleStatus(c *gin.Context) {
	s, err := a.Vehicles.Status(c.Request.Context(), principal(c).UserID, domain.VehicleID(c.Param("id")))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, statusResponse{
		VehicleID: string(s.VehicleID), Locked: s.Locked, Doors: openings(s.Doors), Windows: openings(s.Windows),
		ObservedAt: s.ObservedAt.UTC(), FetchedAt: s.FetchedAt.UTC(), Source: string(s.Source),
	})
}

func (a *api) deleteVehicle(c *gin.Context) {
	if err := a.Vehicles.Disconnect(c.Request.Context(), principal(c).UserID, domain.VehicleID(c.Param("id"))); err != nil {
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
