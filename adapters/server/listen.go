package server

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

	"github.com/betterkey/backend/adapters/config"
	"github.com/betterkey/backend/adapters/connectapi"
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

// newServers binds the public and admin listeners at start and drains them at stop. When both
// addresses are equal the Connect handler is mounted beside the REST routes on one listener.
func newServers(lc fx.Lifecycle, cfg config.Config, log *slog.Logger, reg *prometheus.Registry, tp trace.TracerProvider,
	rest REST, admin Admin, sims *Simulators, drain *Drain) *Servers {
	public := http.NewServeMux()
	public.Handle("/", rest)
	if sims.Apple != nil {
		public.Handle("/sim/apple/", http.StripPrefix("/sim/apple", sims.Apple.Handler()))
	}
	if sims.Smartcar != nil {
		public.Handle("/sim/smartcar/", http.StripPrefix("/sim/smartcar", sims.Smartcar.Handler()))
	}
	// Operators' endpoints live on the admin listener: the Connect API and /metrics, which tells
	// an outsider how busy the fleet is and which errors it meets. Sharing the public listener,
	// /metrics wants an admin token like the API.
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	shared := cfg.AdminAddr == cfg.HTTPAddr
	if shared {
		public.Handle(admin.Path, admin.Handler)
		public.Handle("GET /metrics", connectapi.RequireToken(cfg.AdminTokens, metrics))
	}
	out := &Servers{}
	specs := []struct {
		name string
		addr string
		h    http.Handler
		dst  *string
	}{{"http", cfg.HTTPAddr, public, &out.HTTPAddr}}
	if !shared {
		adminMux := http.NewServeMux()
		adminMux.Handle(admin.Path, admin.Handler)
		adminMux.Handle("GET /metrics", metrics)
		specs = append(specs, struct {
			name string
			addr string
			h    http.Handler
			dst  *string
		}{"admin", cfg.AdminAddr, httpsOnly(cfg, adminMux), &out.AdminAddr})
	}
	for _, s := range specs {
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
	if shared {
		out.AdminAddr = "" // filled with HTTPAddr once bound; see AdminURL
	}
	return out
}

// httpsOnly holds the admin listener to the public one's rule outside development: TLS, or a
// trusted proxy that says the client used https. Admin tokens must never cross a network in clear.
func httpsOnly(cfg config.Config, h http.Handler) http.Handler {
	if !cfg.Secure() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil && !(cfg.TrustForwardedProto && r.Header.Get("X-Forwarded-Proto") == "https") {
			http.Error(w, "use https", http.StatusForbidden)
			return
		}
		w.Header().Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
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
