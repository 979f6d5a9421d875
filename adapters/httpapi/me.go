package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/betterkey/backend/domain"
)

type meResponse struct {
	ID             string    `json:"id"`
	Email          string    `json:"email,omitempty"`
	IsPrivateEmail bool      `json:"is_private_email"`
	CreatedAt      time.Time `json:"created_at"`
}

func (a *api) me(c *gin.Context) {
	u, err := a.Identity.User(c.Request.Context(), principal(c).UserID)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, meFrom(u))
}

// meFrom is the account as /v1/me and the export show it.
func meFrom(u domain.User) meResponse {
	return meResponse{ID: string(u.ID), Email: u.Email, IsPrivateEmail: u.IsPrivateEmail, CreatedAt: u.CreatedAt.UTC()}
}

// sessionView is a session as the app sees it, in the session list and in the export.
type sessionView struct {
	ID         string    `json:"id"`
	InstallID  string    `json:"install_id"`
	Device     string    `json:"device"`
	DeviceName string    `json:"device_name,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

func sessionViewFrom(s domain.Session) sessionView {
	return sessionView{ID: string(s.ID), InstallID: s.InstallID, Device: string(s.Device), DeviceName: s.DeviceName,
		CreatedAt: s.CreatedAt.UTC(), LastUsedAt: s.LastUsedAt.UTC(), ExpiresAt: s.IdleExpiresAt.UTC()}
}

type sessionItem struct {
	sessionView
	Current bool `json:"current"`
}

// listSessions shows the caller's live sessions.
func (a *api) listSessions(c *gin.Context) {
	p := principal(c)
	list, err := a.Identity.LiveSessions(c.Request.Context(), p.UserID)
	if err != nil {
		a.fail(c, err)
		return
	}
	items := make([]sessionItem, 0, len(list))
	for _, s := range list {
		items = append(items, sessionItem{sessionView: sessionViewFrom(s), Current: s.ID == p.SessionID})
	}
	c.JSON(http.StatusOK, gin.H{"sessions": items})
}

func (a *api) revokeSession(c *gin.Context) {
	id := c.Param("id")
	if !domain.ValidID(id) {
		a.fail(c, domain.ErrNotFound)
		return
	}
	if err := a.Identity.RevokeSession(c.Request.Context(), principal(c).UserID, domain.SessionID(id), domain.RevokeUser); err != nil {
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
