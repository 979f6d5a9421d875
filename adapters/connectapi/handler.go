// Package connectapi serves the internal admin API over Connect, gRPC and gRPC-Web. Support and
// operations tools (betterkeyctl among them) use it to look up accounts, force re-authentication
// and rotate the key of secrets at rest; the mobile app never reaches it. Every call passes one
// auth interceptor (admin bearer tokens) and one error interceptor (the domain-kind →
// Connect-code table and the audit log line).
package connectapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/gen/betterkey/admin/v1/adminv1connect"
)

// DefaultMaxRequestBytes bounds one request message when Config leaves it zero. Admin requests are
// a few ids, so anything larger is hostile or a bug.
const DefaultMaxRequestBytes = 64 << 10

// Config is what the admin API takes from the server configuration.
type Config struct {
	// AdminTokens are the bearer tokens allowed to call the API (BETTERKEY_ADMIN_TOKENS). Several
	// may be valid at once so a token can be rotated without downtime. With none, every call is
	// refused.
	AdminTokens []domain.Secret
	// MaxRequestBytes bounds one request message; zero takes DefaultMaxRequestBytes.
	MaxRequestBytes int
	// Failed hears every failed call's procedure and stable code, for the errors counter; nil
	// means nobody listens.
	Failed func(procedure, code string)
}

// Route is one Connect service ready to mount on the server's mux. The server mounts every Route
// next to the REST router, so adding a service here needs no change to the server.
type Route struct {
	// Pattern is the service's path prefix, e.g. "/betterkey.admin.v1.AdminService/".
	Pattern string
	// Handler serves every procedure of the service over Connect, gRPC and gRPC-Web.
	Handler http.Handler
}

// Mount registers the route on mux; it is the one line a server needs per route.
func (r Route) Mount(mux *http.ServeMux) { mux.Handle(r.Pattern, r.Handler) }

// NewHandler builds the AdminService route behind the error-and-audit interceptor (outermost, so
// it also sees refused calls) and the auth interceptor. Panics in a handler become internal
// errors instead of dropped connections.
func NewHandler(cfg Config, admin *AdminServer, log *slog.Logger) Route {
	auth := newAuthInterceptor(cfg.AdminTokens)
	if auth.empty() {
		log.Warn("admin API has no tokens configured; every call will be refused")
	}
	maxBytes := cfg.MaxRequestBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxRequestBytes
	}
	path, h := adminv1connect.NewAdminServiceHandler(admin,
		connect.WithInterceptors(newErrorInterceptor(log, cfg.Failed), auth),
		connect.WithRecover(recoverPanic),
		connect.WithReadMaxBytes(maxBytes),
	)
	return Route{Pattern: path, Handler: withResponseController(h)}
}

// recoverPanic turns a handler panic into an unclassified error; the error interceptor then
// logs it and sends the client nothing but "internal error".
func recoverPanic(_ context.Context, spec connect.Spec, _ http.Header, v any) error {
	return fmt.Errorf("panic in %s: %v", spec.Procedure, v)
}
