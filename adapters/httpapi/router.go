// Package httpapi is the REST transport for the mobile app (SPEC §11), built on Gin. Handlers
// decode, call one use case and encode; every error goes through one problem+json mapping table.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/betterkey/backend/adapters/admission"
	openapi "github.com/betterkey/backend/api"
	"github.com/betterkey/backend/app/account"
	"github.com/betterkey/backend/app/command"
	"github.com/betterkey/backend/app/identity"
	"github.com/betterkey/backend/app/vehiclelink"
	"github.com/betterkey/backend/app/webhook"
)

// Options tune the transport.
type Options struct {
	MaxBodyBytes        int64
	RequireHTTPS        bool
	TrustForwardedProto bool
	// AppReturnURL is where the Smartcar callback sends the owner back, with status and code.
	AppReturnURL string
	// RequestTimeout bounds each request's work (database, cipher, upstream calls); a long-poll
	// gets its wait on top. Zero means 10 seconds.
	RequestTimeout time.Duration
	// Admission sizes the overload limiter (admission.Defaults for zero fields).
	Admission admission.Limits
}

// Deps are the use cases and probes the routes call.
type Deps struct {
	Identity *identity.Service
	Vehicles *vehiclelink.Service
	// Webhooks takes Smartcar webhooks and Apple notifications; nil leaves their routes out.
	Webhooks *webhook.Service
	Commands *command.Service
	// Account deletes the caller's account and exports its data.
	Account *account.Service
	// Ready reports whether the database and encryption are usable; /readyz calls it.
	Ready    func(ctx context.Context) error
	Log      *slog.Logger
	Registry *prometheus.Registry
}

type api struct {
	Deps
	opts    Options
	log     *slog.Logger
	metrics *metrics
	limiter *admission.Limiter
}

// New builds the Gin engine with every v1 route.
func New(d Deps, opts Options) (*gin.Engine, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 10
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	m, err := newMetrics(d.Registry)
	if err != nil {
		return nil, err
	}
	a := &api{Deps: d, opts: opts, log: d.Log, metrics: m, limiter: admission.New(opts.Admission)}
	if err := registerAdmissionGauges(d.Registry, a.limiter); err != nil {
		return nil, err
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false // a path names a resource or nothing; no redirects
	r.RedirectFixedPath = false
	r.ContextWithFallback = true
	if err := a.mountWebhooks(r); err != nil { // before Use: the webhook routes carry their own chain
		return nil, err
	}
	r.Use(withRequestID, a.accessLog, a.recoverPanics, a.withDeadline, a.secureTransport, a.admit, a.limitBody)
	r.NoRoute(func(c *gin.Context) { a.fail(c, errRouteNotFound) })
	r.NoMethod(a.noMethod)

	r.Match(getHead, "/healthz", a.healthz)
	r.Match(getHead, "/readyz", a.readyz)

	doc, err := openapi.JSON()
	if err != nil {
		return nil, err
	}
	v1 := r.Group("/v1")
	v1.Match(getHead, "/openapi.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", doc) })
	v1.POST("/auth/nonce", a.issueNonce)
	v1.POST("/auth/apple", a.signIn)
	v1.POST("/auth/refresh", a.refresh)
	v1.GET("/smartcar/callback", a.smartcarCallback) // no HEAD: it consumes the OAuth state

	authed := v1.Group("", a.requireSession)
	authed.POST("/auth/signout", a.signOut)
	authed.Match(getHead, "/me", a.me)
	authed.DELETE("/me", a.deleteAccount)
	authed.Match(getHead, "/me/export", a.exportAccount)
	authed.Match(getHead, "/me/sessions", a.listSessions)
	authed.DELETE("/me/sessions/:id", a.revokeSession)
	authed.POST("/vehicles/connect", a.startConnect)
	authed.POST("/vehicles/connect/complete", a.completeConnect)
	authed.Match(getHead, "/vehicles", a.listVehicles)
	authed.Match(getHead, "/vehicles/:id", a.getVehicle)
	authed.Match(getHead, "/vehicles/:id/status", a.vehicleStatus)
	authed.POST("/vehicles/:id/commands", a.submitCommand)
	authed.Match(getHead, "/vehicles/:id/commands", a.listCommands)
	authed.Match(getHead, "/commands/:id", a.getCommand)
	authed.DELETE("/vehicles/:id", a.deleteVehicle)
	return r, nil
}

// getHead are the methods of every read: HEAD is GET without the body (net/http drops the
// body's bytes for HEAD).
var getHead = []string{http.MethodGet, http.MethodHead}

// noMethod answers a method the route lacks: 405 with Allow (gin fills it in from the routes),
// and OPTIONS, which every route takes, as 204 with the same Allow.
func (a *api) noMethod(c *gin.Context) {
	allow := c.Writer.Header().Get("Allow") + ", OPTIONS"
	c.Header("Allow", allow)
	if c.Request.Method == http.MethodOptions {
		c.AbortWithStatus(http.StatusNoContent)
		return
	}
	a.fail(c, errMethodNotAllowed)
}

func (a *api) healthz(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

// readyz answers 200 while this replica should get traffic. A failed dependency is logged as a
// warning (the probe runs every few seconds, the 503s are counted); a drain is expected and not
// logged at all, its own log lines say when it began and ended.
func (a *api) readyz(c *gin.Context) {
	if a.Ready != nil {
		if err := a.Ready(c.Request.Context()); err != nil {
			why := errNotReady
			if errors.Is(err, ErrDraining) {
				why = ErrDraining
			} else {
				a.log.WarnContext(c.Request.Context(), "not ready", slog.String("error", err.Error()))
			}
			writeProblem(c, problemFor(why, requestID(c)))
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
