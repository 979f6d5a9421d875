package wiring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/betterkey/backend/adapters/connectapi"
	"github.com/betterkey/backend/adapters/httpapi"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
)

// Admin is the internal-tools handler (Connect RPC) and the path prefix it serves.
type Admin struct {
	Path    string
	Handler http.Handler
}

// Servers are the running listeners; Addr fields are the bound addresses, which differ from the
// configured ones when a test asks for port 0.
type Servers struct {
	HTTPAddr  string
	AdminAddr string
}

// Every server has limits: slow clients cannot hold connections, and a long-poll (≤ 20 s) still
// fits in the write timeout.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 35 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 32 << 10
)

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true) // h2c, so gRPC clients reach the Connect handlers without TLS locally
	p.SetHTTP2(true)
	return &http.Server{
		Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout,
		IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes, Protocols: p,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// listener is one HTTP listener to bind: its name, configured address, handler, and where its
// bound address is written.
type listener struct {
	name string
	addr string
	h    http.Handler
	dst  *string
}

// listeners lays the handlers out on the public and admin listeners. Operators' endpoints (the
// Connect API and /metrics, which tells an outsider how busy the fleet is and which errors it
// meets) live on the admin listener; when both addresses are equal they sit beside the REST
// routes, /metrics then wanting an admin token like the API. Either way they follow the HTTPS rule.
func listeners(cfg config.Config, reg *prometheus.Registry, rest http.Handler, admin Admin, sims *Simulators, out *Servers) []listener {
	public := http.NewServeMux()
	public.Handle("/", rest)
	if sims.Apple != nil {
		public.Handle("/sim/apple/", http.StripPrefix("/sim/apple", sims.Apple))
	}
	if sims.Smartcar != nil {
		public.Handle("/sim/smartcar/", http.StripPrefix("/sim/smartcar", sims.Smartcar))
	}
	adminAPI := httpsOnly(cfg, admin.Handler)
	metrics := httpsOnly(cfg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if cfg.AdminAddr == cfg.HTTPAddr {
		public.Handle(admin.Path, adminAPI)
		public.Handle("GET /metrics", connectapi.RequireToken(cfg.AdminTokens, metrics))
		return []listener{{"http", cfg.HTTPAddr, httpapi.CanonicalPaths(public), &out.HTTPAddr}}
	}
	adminMux := http.NewServeMux()
	adminMux.Handle(admin.Path, adminAPI)
	adminMux.Handle("GET /metrics", metrics)
	return []listener{{"http", cfg.HTTPAddr, httpapi.CanonicalPaths(public), &out.HTTPAddr}, {"admin", cfg.AdminAddr, httpapi.CanonicalPaths(adminMux), &out.AdminAddr}}
}

// newServers binds the listeners at start and drains them at stop.
func newServers(lc fx.Lifecycle, cfg config.Config, log *slog.Logger, reg *prometheus.Registry, tp trace.TracerProvider,
	rest REST, admin Admin, sims *Simulators, drain *Drain) *Servers {
	out := &Servers{}
	for _, s := range listeners(cfg, reg, rest, admin, sims, out) {
		srv := newHTTPServer(drain.Track(traced(tp, s.name, s.h)), log)
		lc.Append(fx.Hook{
			OnStart: func(ctx context.Context) error {
				ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.addr)
				if err != nil {
					return fmt.Errorf("listen %s on %s: %w", s.name, s.addr, err)
				}
				*s.dst = ln.Addr().String()
				log.Info("listening", slog.String("server", s.name), slog.String("addr", *s.dst))
				go func() {
					if err := serve(srv, ln, cfg); err != nil && !errors.Is(err, http.ErrServerClosed) {
						log.Error("server stopped", slog.String("server", s.name), slog.String("error", err.Error()))
					}
				}()
				return nil
			},
			OnStop: func(ctx context.Context) error {
				ctx, cancel := context.WithTimeout(ctx, cfg.ShutdownGrace)
				defer cancel()
				return srv.Shutdown(ctx)
			},
		})
	}
	return out // AdminAddr stays empty on a shared listener; see AdminURL
}

// httpsOnly holds the operators' endpoints (Connect and /metrics) to the REST rule outside
// development, on their own listener or beside the REST routes: admin tokens must never cross a
// network in clear.
func httpsOnly(cfg config.Config, h http.Handler) http.Handler {
	if !cfg.Secure() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !httpapi.IsHTTPS(r, cfg.TrustForwardedProto) {
			http.Error(w, "use https", http.StatusForbidden)
			return
		}
		w.Header().Set("Strict-Transport-Security", httpapi.HSTS)
		h.ServeHTTP(w, r)
	})
}

func serve(srv *http.Server, ln net.Listener, cfg config.Config) error {
	if cfg.TLSCertFile != "" {
		return srv.ServeTLS(ln, cfg.TLSCertFile, cfg.TLSKeyFile)
	}
	return srv.Serve(ln)
}

// AdminURL is the base URL of the Connect server.
func (s *Servers) AdminURL() string {
	if s.AdminAddr == "" {
		return "http://" + s.HTTPAddr
	}
	return "http://" + s.AdminAddr
}

// HTTPURL is the base URL of the REST server.
func (s *Servers) HTTPURL() string { return "http://" + s.HTTPAddr }
