// Package floor is the load harness's raw floor: the least a Go service can do for the same
// endpoints — net/http, pgx with its statement cache, encoding/json — running the same SQL and
// the same crypto as betterkeyd on the same database (access-token verification and the session
// read on every authenticated request, the locked refresh rotation with its reuse history, the
// webhook's HMAC and deduplicating insert). It has no middleware, no admission, no metrics, no
// logging, no problem documents beyond a status: what the harness measures against it is the
// price of everything betterkeyd does besides the work.
package floor

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/betterkey/backend/adapters/sessiontoken"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Config is what the floor needs: the database, the session signing key and the webhook secret.
type Config struct {
	Addr          string
	DatabaseURL   string
	SigningKey    string
	WebhookSecret string
	// MaxConns matches the server's pool (20), so neither has more database connections.
	MaxConns int32
}

type floor struct {
	db     *pgxpool.Pool
	tokens *sessiontoken.Signer
	secret []byte
}

// Serve answers until ctx ends.
func Serve(ctx context.Context, cfg Config) error {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return err
	}
	pc.MaxConns = cfg.MaxConns
	db, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return err
	}
	defer db.Close()
	tokens, err := sessiontoken.New(sessiontoken.Config{SigningKey: domain.NewSecret(cfg.SigningKey), Issuer: "betterkey", Audience: "betterkey-app"})
	if err != nil {
		return err
	}
	f := &floor{db: db, tokens: tokens, secret: []byte(cfg.WebhookSecret)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /v1/me", f.me)
	mux.HandleFunc("GET /v1/vehicles", f.vehicles)
	mux.HandleFunc("POST /v1/auth/refresh", f.refresh)
	mux.HandleFunc("POST /v1/webhooks/smartcar", f.webhook)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// authenticate is betterkeyd's per-request check: the token's signature and expiry, then the
// session row (revocation, expiry, owner).
func (f *floor) authenticate(r *http.Request) (ports.AccessClaims, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ports.AccessClaims{}, false
	}
	now := time.Now()
	c, err := f.tokens.Verify(tok, now)
	if err != nil {
		return c, false
	}
	var user string
	var revoked *time.Time
	var idle, absolute time.Time
	err = f.db.QueryRow(r.Context(), `SELECT user_id, revoked_at, idle_expires_at, absolute_expires_at FROM sessions WHERE id = $1`,
		string(c.SessionID)).Scan(&user, &revoked, &idle, &absolute)
	if err != nil || revoked != nil || user != string(c.UserID) || !now.Before(idle) || !now.Before(absolute) {
		return c, false
	}
	return c, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *floor) me(w http.ResponseWriter, r *http.Request) {
	c, ok := f.authenticate(r)
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var u struct {
		ID        string    `json:"id"`
		Email     string    `json:"email,omitempty"`
		CreatedAt time.Time `json:"created_at"`
	}
	if err := f.db.QueryRow(r.Context(), `SELECT id, email, created_at FROM users WHERE id = $1`, string(c.UserID)).
		Scan(&u.ID, &u.Email, &u.CreatedAt); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": u})
}

type vehicle struct {
	ID     string `json:"id"`
	Make   string `json:"make"`
	Model  string `json:"model"`
	Year   int    `json:"year"`
	Status string `json:"status"`
}

func (f *floor) vehicles(w http.ResponseWriter, r *http.Request) {
	c, ok := f.authenticate(r)
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	rows, err := f.db.Query(r.Context(), `SELECT v.id, v.make, v.model, v.year, c.status FROM vehicles v
		JOIN connections c ON c.id = v.connection_id WHERE v.user_id = $1 ORDER BY v.created_at, v.id LIMIT 100`, string(c.UserID))
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (vehicle, error) {
		var v vehicle
		return v, row.Scan(&v.ID, &v.Make, &v.Model, &v.Year, &v.Status)
	})
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"vehicles": list})
}

// refresh is the rotation betterkeyd does: find the session by the presented token's hash, lock
// it, check it, store the next hash unless it was ever used, remember the old one, sign a token.
func (f *floor) refresh(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || req.RefreshToken == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	presented := domain.HashToken(req.RefreshToken)
	ctx := r.Context()
	var id string
	if err := f.db.QueryRow(ctx, `SELECT id FROM sessions WHERE refresh_hash = $1`, presented[:]).Scan(&id); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	next := domain.NewOpaqueToken()
	nextHash := domain.HashToken(next.Reveal())
	now := time.Now()
	var user string
	status := http.StatusOK
	err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
		var hash []byte
		var revoked *time.Time
		var absolute time.Time
		if err := tx.QueryRow(ctx, `SELECT user_id, refresh_hash, revoked_at, absolute_expires_at FROM sessions WHERE id = $1 FOR UPDATE`, id).
			Scan(&user, &hash, &revoked, &absolute); err != nil {
			return err
		}
		if revoked != nil || !hmac.Equal(hash, presented[:]) || !now.Before(absolute) {
			status = http.StatusUnauthorized
			return nil
		}
		idle := now.Add(domain.DefaultSessionLifetimes().Idle)
		if absolute.Before(idle) {
			idle = absolute
		}
		tag, err := tx.Exec(ctx, `UPDATE sessions SET refresh_hash = $2, last_used_at = $3, idle_expires_at = $4
			WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM session_refresh_history WHERE refresh_hash = $2)`, id, nextHash[:], now, idle)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			status = http.StatusConflict
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO session_refresh_history (refresh_hash, session_id, rotated_at) VALUES ($1, $2, $3)`, hash, id, now)
		return err
	})
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if status != http.StatusOK {
		w.WriteHeader(status)
		return
	}
	access, err := f.tokens.Issue(ports.AccessClaims{UserID: domain.UserID(user), SessionID: domain.SessionID(id), IssuedAt: now,
		ExpiresAt: now.Add(domain.DefaultSessionLifetimes().Access)})
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": access.Reveal(), "refresh_token": next.Reveal(),
		"token_type": "Bearer", "expires_in": int(domain.DefaultSessionLifetimes().Access.Seconds())})
}

// webhook checks Smartcar's signature over the raw body before parsing, then stores the event
// once by its id for a worker to apply.
func (f *floor) webhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 256<<10+1))
	if err != nil || len(body) > 256<<10 {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	m := hmac.New(sha256.New, f.secret)
	m.Write(body)
	got, err := hex.DecodeString(r.Header.Get("SC-Signature"))
	if err != nil || !hmac.Equal(got, m.Sum(nil)) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev struct {
		EventID   string `json:"eventId"`
		EventType string `json:"eventType"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.EventID == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	now := time.Now()
	if _, err := f.db.Exec(r.Context(), `INSERT INTO webhook_inbox (source, event_id, event_type, payload, status, received_at, available_at)
		VALUES ('smartcar', $1, $2, $3, 'pending', $4, $4) ON CONFLICT DO NOTHING`, ev.EventID, ev.EventType, body, now); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "received"})
}
