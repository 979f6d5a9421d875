package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/betterkey/backend/adapters/bearer"
	"github.com/betterkey/backend/app/identity"
	"github.com/betterkey/backend/domain"
)

const principalKey = "principal"

// sessionResponse is the session body of SPEC §11.
type sessionResponse struct {
	AccessToken           string    `json:"access_token"`
	AccessTokenExpiresAt  time.Time `json:"access_token_expires_at"`
	RefreshToken          string    `json:"refresh_token"`
	RefreshTokenExpiresAt time.Time `json:"refresh_token_expires_at"`
	TokenType             string    `json:"token_type"`
	User                  userRef   `json:"user"`
}

type userRef struct {
	ID string `json:"id"`
}

func newSessionResponse(t identity.Tokens) sessionResponse {
	return sessionResponse{
		AccessToken: t.AccessToken.Reveal(), AccessTokenExpiresAt: t.AccessTokenExpiresAt.UTC(),
		RefreshToken: t.RefreshToken.Reveal(), RefreshTokenExpiresAt: t.RefreshTokenExpiresAt.UTC(),
		TokenType: "Bearer", User: userRef{ID: string(t.UserID)},
	}
}

func (a *api) issueNonce(c *gin.Context) {
	raw, exp, err := a.Identity.IssueNonce(c.Request.Context())
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"nonce": raw.Reveal(), "expires_at": exp.UTC()})
}

type signInRequest struct {
	IdentityToken     string `json:"identity_token"`
	Nonce             string `json:"nonce"`
	AuthorizationCode string `json:"authorization_code"`
	InstallID         string `json:"install_id"`
	Device            string `json:"device"`
	DeviceName        string `json:"device_name"`
}

func (a *api) signIn(c *gin.Context) {
	var req signInRequest
	if !a.bindJSON(c, &req, bodyRequired) {
		return
	}
	t, err := a.Identity.SignIn(c.Request.Context(), identity.SignInInput{
		IdentityToken: domain.NewSecret(req.IdentityToken), Nonce: domain.NewSecret(req.Nonce),
		AuthorizationCode: domain.NewSecret(req.AuthorizationCode),
		InstallID:         req.InstallID, Device: req.Device, DeviceName: req.DeviceName,
	})
	if err != nil {
		a.fail(c, err)
		return
	}
	if t.AppleGrant == identity.AppleGrantNotStored {
		// The sign-in stands; without the refresh token account deletion cannot revoke at Apple
		// until a later sign-in brings a new code.
		a.log.WarnContext(c.Request.Context(), "apple refresh token not kept", slog.String("request_id", requestID(c)),
			slog.String("user_id", string(t.UserID)), slog.String("error", t.AppleGrantErr.Error()))
	}
	c.JSON(http.StatusOK, newSessionResponse(t))
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (a *api) refresh(c *gin.Context) {
	var req refreshRequest
	if !a.bindJSON(c, &req, bodyRequired) {
		return
	}
	t, err := a.Identity.Refresh(c.Request.Context(), domain.NewSecret(req.RefreshToken))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, newSessionResponse(t))
}

func (a *api) signOut(c *gin.Context) {
	if err := a.Identity.SignOut(c.Request.Context(), principal(c)); err != nil {
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// requireSession authenticates the bearer access token and the live session behind it.
func (a *api) requireSession(c *gin.Context) {
	token, err := bearer.Token(c.Request.Header)
	if err != nil {
		a.fail(c, fmt.Errorf("authenticate: %w: %w", err, domain.ErrUnauthorized))
		return
	}
	p, err := a.Identity.Authenticate(c.Request.Context(), token)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.Set(principalKey, p)
	c.Next()
}

func principal(c *gin.Context) identity.Principal {
	p, _ := c.Get(principalKey)
	pr, _ := p.(identity.Principal)
	return pr
}
