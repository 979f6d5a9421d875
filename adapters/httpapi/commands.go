package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/betterkey/backend/app/command"
	"github.com/betterkey/backend/domain"
)

// submitWait is how long POST /commands waits for a command to end before answering 202: long
// enough for a quick upstream to give the final state in one round trip, short enough that the
// app is never kept waiting for a slow car.
const submitWait = 800 * time.Millisecond

// maxWaitSeconds caps GET /v1/commands/{id}?wait= (SPEC §5).
const maxWaitSeconds = 20

// idempotentReplayHeader tells the app that the answer is the original command of a replayed
// Idempotency-Key, not a new one.
const idempotentReplayHeader = "Idempotent-Replayed"

type commandRequest struct {
	Action string `json:"action"`
}

// commandResponse is a command as the app sees it (SPEC §11), with the history fields: device,
// dispatch time, deadline and Smartcar's request id. It carries no token material.
type commandResponse struct {
	ID                string     `json:"id"`
	VehicleID         string     `json:"vehicle_id"`
	Action            string     `json:"action"`
	Status            string     `json:"status"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
	DispatchedAt      *time.Time `json:"dispatched_at,omitempty"`
	FinishedAt        *time.Time `json:"finished_at,omitempty"`
	ExpiresAt         time.Time  `json:"expires_at"`
	ErrorCode         string     `json:"error_code,omitempty"`
	RetryAfterSeconds int        `json:"retry_after_seconds,omitempty"`
	Device            string     `json:"device,omitempty"`
	UpstreamRequestID string     `json:"upstream_request_id,omitempty"`
}

func newCommandResponse(c domain.Command) commandResponse {
	r := commandResponse{
		ID: string(c.ID), VehicleID: string(c.VehicleID), Action: string(c.Action), Status: string(c.Status),
		CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(), DispatchedAt: utc(c.DispatchedAt),
		FinishedAt: utc(c.FinishedAt), ExpiresAt: c.Deadline.UTC(), ErrorCode: c.ErrorCode,
		Device: string(c.Device), UpstreamRequestID: c.UpstreamRequestID,
	}
	if c.RetryAfter > 0 {
		r.RetryAfterSeconds = domain.CeilSeconds(c.RetryAfter)
	}
	return r
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}

// submitCommand is POST /v1/vehicles/{id}/commands: 202 with the command, or 200 when it ended
// within submitWait; a replayed Idempotency-Key answers with the original command the same way.
func (a *api) submitCommand(c *gin.Context) {
	var req commandRequest
	if !a.bindJSON(c, &req, bodyRequired) {
		return
	}
	p := principal(c)
	ctx := c.Request.Context()
	sub, err := a.Commands.Submit(ctx, command.SubmitInput{UserID: p.UserID, SessionID: p.SessionID,
		VehicleID: domain.VehicleID(c.Param("id")), Action: req.Action, IdempotencyKey: c.GetHeader("Idempotency-Key")})
	if err != nil {
		a.failCommand(c, err)
		return
	}
	cmd := sub.Command
	if !cmd.Status.Final() {
		if latest, err := a.Commands.Get(ctx, p.UserID, cmd.ID, submitWait); err == nil {
			cmd = latest
		}
	}
	if sub.Replayed {
		c.Header(idempotentReplayHeader, "true")
	}
	c.Header("Location", "/v1/commands/"+string(cmd.ID))
	a.writeCommand(c, cmd)
}

// writeCommand answers 200 for a final command and 202 for one still running; a command that
// failed rate limited passes the upstream's Retry-After on.
func (a *api) writeCommand(c *gin.Context, cmd domain.Command) {
	status := http.StatusAccepted
	if cmd.Status.Final() {
		status = http.StatusOK
	}
	if cmd.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(domain.CeilSeconds(cmd.RetryAfter)))
	}
	c.JSON(status, newCommandResponse(cmd))
}

// getCommand is GET /v1/commands/{id}?wait=N: the command, after waiting up to N seconds (at most
// 20) for it to end.
func (a *api) getCommand(c *gin.Context) {
	var wait time.Duration
	if raw := c.Query("wait"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 || n > maxWaitSeconds {
			a.failCommand(c, domain.Invalid("wait", "must be whole seconds from 0 to 20"))
			return
		}
		wait = time.Duration(n) * time.Second
	}
	cmd, err := a.Commands.Get(c.Request.Context(), principal(c).UserID, domain.CommandID(c.Param("id")), wait)
	if err != nil {
		a.failCommand(c, err)
		return
	}
	c.JSON(http.StatusOK, newCommandResponse(cmd))
}

// listCommands is GET /v1/vehicles/{id}/commands?limit=&before=: the vehicle's history, newest
// first; the next page is asked for with before set to the last id of this one.
func (a *api) listCommands(c *gin.Context) {
	limit := 0
	if raw := c.Query("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 {
			a.failCommand(c, domain.Invalid("limit", "must be between 1 and 100"))
			return
		}
		limit = n
	}
	list, err := a.Commands.History(c.Request.Context(), principal(c).UserID, domain.VehicleID(c.Param("id")),
		domain.CommandID(c.Query("before")), limit)
	if err != nil {
		a.failCommand(c, err)
		return
	}
	out := make([]commandResponse, 0, len(list))
	for _, cmd := range list {
		out = append(out, newCommandResponse(cmd))
	}
	c.JSON(http.StatusOK, gin.H{"commands": out})
}

// failCommand is fail plus the extension members of a refused submission: the wait before
// trying again (also as Retry-After) and, for a command in flight, the command to follow.
func (a *api) failCommand(c *gin.Context, err error) {
	p := problemFor(err, requestID(c))
	if r, ok := errors.AsType[*domain.CommandRefusal](err); ok {
		p.RetryAfterSeconds, p.CommandID = r.RetryAfterSeconds(), string(r.CommandID)
	}
	if p.Status >= 500 {
		a.log.ErrorContext(c.Request.Context(), "request failed", slog.String("request_id", p.RequestID),
			slog.String("route", c.FullPath()), slog.String("error", err.Error()))
	}
	writeProblem(c, p)
}
