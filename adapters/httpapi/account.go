package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/betterkey/backend/app/account"
	"github.com/betterkey/backend/domain"
)

// deleteAccount is DELETE /v1/me. The caller's sessions end at once and the request is stored;
// 204 when the account is gone, 202 when an upstream (Apple, Smartcar) failed midway and the inbox
// worker finishes the deletion, with retries, on its own. Without the webhook service the
// deletion is only tried in the request, and a failure is an error the app may retry.
func (a *api) deleteAccount(c *gin.Context) {
	user := principal(c).UserID
	if a.Webhooks == nil {
		if err := a.Account.Delete(c.Request.Context(), user, domain.ErasureForce{}); err != nil {
			a.fail(c, err)
			return
		}
		c.Status(http.StatusNoContent)
		return
	}
	done, err := a.Webhooks.DeleteAccount(c.Request.Context(), user)
	if err != nil {
		a.fail(c, err)
		return
	}
	if !done {
		c.Status(http.StatusAccepted)
		return
	}
	c.Status(http.StatusNoContent)
}

// exportResponse is the data export (GET /v1/me/export). Every field is listed here on purpose:
// none can carry a token, a token hash, ciphertext or a Smartcar identifier.
type exportResponse struct {
	Account  meResponse      `json:"account"`
	Sessions []exportSession `json:"sessions"`
	Vehicles []exportVehicle `json:"vehicles"`
	Commands []exportCommand `json:"commands"`
}

type exportSession struct {
	sessionView
	AbsoluteExpiresAt time.Time  `json:"absolute_expires_at"`
	RevokedAt         *time.Time `json:"revoked_at,omitempty"`
}

type exportVehicle struct {
	ID       string    `json:"id"`
	Make     string    `json:"make"`
	Model    string    `json:"model"`
	Year     int       `json:"year"`
	Status   string    `json:"status"`
	LinkedAt time.Time `json:"linked_at"`
}

type exportCommand struct {
	ID         string     `json:"id"`
	VehicleID  string     `json:"vehicle_id"`
	Action     string     `json:"action"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	ErrorCode  string     `json:"error_code,omitempty"`
}

func newExportResponse(x account.Export) exportResponse {
	out := exportResponse{
		Account:  meFrom(x.User),
		Sessions: make([]exportSession, 0, len(x.Sessions)),
		Vehicles: make([]exportVehicle, 0, len(x.Vehicles)),
		Commands: make([]exportCommand, 0, len(x.Commands)),
	}
	for _, s := range x.Sessions {
		out.Sessions = append(out.Sessions, exportSession{sessionView: sessionViewFrom(s),
			AbsoluteExpiresAt: s.AbsoluteExpiresAt.UTC(), RevokedAt: utc(s.RevokedAt)})
	}
	for _, v := range x.Vehicles {
		out.Vehicles = append(out.Vehicles, exportVehicle{ID: string(v.ID), Make: v.Make, Model: v.Model, Year: v.Year,
			Status: string(v.ConnectionStatus), LinkedAt: v.CreatedAt.UTC()})
	}
	for _, cmd := range x.Commands {
		out.Commands = append(out.Commands, exportCommand{ID: string(cmd.ID), VehicleID: string(cmd.VehicleID),
			Action: string(cmd.Action), Status: string(cmd.Status), CreatedAt: cmd.CreatedAt.UTC(),
			FinishedAt: utc(cmd.FinishedAt), ErrorCode: cmd.ErrorCode})
	}
	return out
}

// exportAccount is GET /v1/me/export: the caller's account, sessions, vehicles and command
// history as one JSON document, offered as a download.
func (a *api) exportAccount(c *gin.Context) {
	x, err := a.Account.Export(c.Request.Context(), principal(c).UserID)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="betterkey-export.json"`)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, newExportResponse(x))
}
