package postgres_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/postgres/pgtest"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// historySeed fills a database with a year and more of a 10,000-user service, generated inside
// PostgreSQL so it takes seconds: 100,000 sessions (nine in ten ended) with 200,000 rotated
// refresh hashes, 15,000 vehicles, 1,000,000 commands (one in a hundred unknown), 100,000
// audit entries and 200,000 settled webhook events. User 1 owns vehicles 1 and 10001.
const historySeed = `
INSERT INTO users (id, apple_issuer, apple_subject, created_at, updated_at)
SELECT md5('u'||i)::uuid, 'https://appleid.apple.com', 'sub-'||i, now() - interval '400 days', now()
FROM generate_series(1, 10000) i;

INSERT INTO connections (id, user_id, smartcar_user_id, status, scopes, access_expires_at, refresh_expires_at, created_at, updated_at)
SELECT md5('c'||i)::uuid, md5('u'||i)::uuid, 'sc-user-'||i, 'active', 'control_security read_security read_vehicle_info',
	now() + interval '2 hours', now() + interval '60 days', now() - interval '300 days', now()
FROM generate_series(1, 10000) i;

INSERT INTO vehicles (id, user_id, connection_id, smartcar_id, make, model, year, created_at)
SELECT md5('v'||i)::uuid, md5('u'||((i-1)%10000+1))::uuid, md5('c'||((i-1)%10000+1))::uuid, 'sc-car-'||i,
	'TESLA', 'Model 3', 2023, now() - interval '300 days'
FROM generate_series(1, 15000) i;

INSERT INTO sessions (id, user_id, install_id, device, refresh_hash, created_at, last_used_at, idle_expires_at,
	absolute_expires_at, revoked_at, revoke_reason)
SELECT md5('s'||i)::uuid, md5('u'||((i-1)%10000+1))::uuid, 'install-'||(i%3), 'phone', sha256(('s'||i)::bytea),
	now() - (i%400) * interval '1 day', now() - (i%400) * interval '1 day',
	CASE WHEN i%10 = 0 THEN now() + interval '10 days' ELSE now() - (i%400) * interval '1 day' + interval '30 days' END,
	CASE WHEN i%10 = 0 THEN now() + interval '60 days' ELSE now() - (i%400) * interval '1 day' + interval '90 days' END,
	CASE WHEN i%10 = 0 THEN NULL WHEN i%10 < 6 THEN now() - (i%400) * interval '1 day' END,
	CASE WHEN i%10 BETWEEN 1 AND 5 THEN 'replaced_by_new_sign_in' ELSE '' END
FROM generate_series(1, 100000) i;

INSERT INTO session_refresh_history (refresh_hash, session_id, rotated_at)
SELECT sha256(('h'||i)::bytea), md5('s'||((i-1)%100000+1))::uuid, now() - (i%100) * interval '1 day'
FROM generate_series(1, 200000) i;

INSERT INTO commands (id, user_id, vehicle_id, connection_id, device, action, status, created_at, updated_at,
	dispatched_at, finished_at, deadline_at)
SELECT md5('k'||i)::uuid, md5('u'||(((i-1)%15000)%10000+1))::uuid, md5('v'||((i-1)%15000+1))::uuid,
	md5('c'||(((i-1)%15000)%10000+1))::uuid, 'phone', CASE WHEN i%2 = 0 THEN 'lock' ELSE 'unlock' END,
	CASE WHEN i%100 = 0 THEN 'unknown' WHEN i%10 = 0 THEN 'failed' ELSE 'succeeded' END,
	t, t, t, t + interval '5 seconds', t + interval '30 seconds'
FROM (SELECT i, now() - interval '1 hour' - (i%500) * interval '1 day' - (i%86400) * interval '1 second' AS t
	FROM generate_series(1, 1000000) i) g;

INSERT INTO command_audit (id, account_pseudonym, vehicle_pseudonym, action, status, created_at, archived_at)
SELECT md5('a'||i)::uuid, md5('p'||(i%5000))::uuid, md5('q'||(i%7000))::uuid, 'lock', 'succeeded',
	now() - (i%500) * interval '1 day', now() - (i%100) * interval '1 day'
FROM generate_series(1, 100000) i;

INSERT INTO webhook_inbox (source, event_id, event_type, payload, status, outcome, received_at, available_at, finished_at)
SELECT 'smartcar', 'ev-'||i, 'VEHICLE_STATE', '{}'::bytea, 'processed', 'applied',
	now() - (i%30) * interval '1 day', now() - (i%30) * interval '1 day', now() - (i%30) * interval '1 day'
FROM generate_series(1, 200000) i;

ANALYZE;
`

// largeRows is from how many rows on a table is large: a hot query must never read it whole.
// Smaller tables (a few signing keys, minutes of nonces) are read whole when that is cheapest.
const largeRows = 5000

// TestHotQueriesUseIndexes runs every hot path of the service through the real stores on a
// database holding realistic history, records each statement exactly as sent, and has
// PostgreSQL EXPLAIN it with its bound values: no statement may plan a sequential scan of a
// large table, so none of them gets slower as the history grows.
func TestHotQueriesUseIndexes(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds a million rows")
	}
	url := pgtest.NewURL(t)
	ctx := t.Context()
	db := pgtest.OpenURL(t, url)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	start := time.Now()
	if _, err := conn.Exec(ctx, historySeed); err != nil {
		t.Fatalf("seed: %v", err)
	}
	t.Logf("seeded in %v", time.Since(start).Round(time.Millisecond))

	large := map[string]bool{}
	rows, err := conn.Query(ctx, `SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace AND reltuples >= $1`, largeRows)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		large[n] = true
	}
	t.Logf("large tables: %v", names)
	rec, err := postgres.RecordStatements(db)
	if err != nil {
		t.Fatal(err)
	}
	paths := hotPaths(t, db, conn)
	var failed []string
	for _, p := range paths {
		rec.Start()
		p.run(ctx)
		rec.Stop()
		stmts := rec.Statements()
		if len(stmts) == 0 {
			t.Errorf("%s: ran no statement", p.name)
		}
		for _, st := range stmts {
			scans, plan := seqScans(t, conn, st, large)
			if len(scans) > 0 {
				failed = append(failed, fmt.Sprintf("%s: sequential scan of %v:\n%s\n%s", p.name, scans, oneLine(st.SQL), plan))
			}
		}
	}
	for _, f := range failed {
		t.Error(f)
	}
	t.Logf("%d hot paths explained", len(paths))
}

type hotPath struct {
	name string
	run  func(ctx context.Context)
}

func hotPaths(t *testing.T, db *postgres.DB, conn *pgx.Conn) []hotPath {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var (
		users    = postgres.NewUsers(db)
		sessions = postgres.NewSessions(db)
		nonces   = postgres.NewNonces(db)
		conns    = postgres.NewConnections(db)
		commands = postgres.NewCommands(db)
		inbox    = postgres.NewWebhookInbox(db)
		now      = time.Now()
		user     = domain.UserID(seedID("u1"))
		vehicle  = domain.VehicleID(seedID("v1"))
		connID   = domain.ConnectionID(seedID("c1"))
		live     = domain.SessionID(seedID("s10000")) // i%10 == 0: live
		nonce    = domain.HashToken("explain-nonce")
		fresh    = domain.NewSession(user, "install-x", domain.DevicePhone, "", domain.HashToken("fresh"), now, domain.DefaultSessionLifetimes())
		cmd      domain.Command
		history  []domain.Command
		event    = domain.InboxEvent{Source: domain.SourceSmartcar, ID: "explain-event", Type: "VEHICLE_STATE", Payload: []byte("{}"),
			Status: domain.InboxPending, ReceivedAt: now, AvailableAt: now}
	)
	locked := true
	return []hotPath{
		{"sign-in: nonce", func(ctx context.Context) {
			must(nonces.Put(ctx, domain.Nonce{Hash: nonce, ExpiresAt: now.Add(time.Minute)}))
			must(nonces.Consume(ctx, nonce, now))
		}},
		{"sign-in: user", func(ctx context.Context) {
			_, err := users.GetByApple(ctx, "https://appleid.apple.com", "sub-1")
			must(err)
		}},
		{"sign-in: live sessions", func(ctx context.Context) {
			_, err := sessions.ListLive(ctx, user, now, domain.MaxLiveSessions)
			must(err)
		}},
		{"sign-in: create session", func(ctx context.Context) { must(sessions.Create(ctx, fresh)) }},
		{"sign-in: replace session", func(ctx context.Context) {
			_, err := sessions.Update(ctx, live, func(x *domain.Session) error { x.Revoke(now, domain.RevokeNewSignIn); return nil })
			must(err)
		}},
		{"refresh", func(ctx context.Context) {
			id, err := sessions.FindByRefresh(ctx, fresh.RefreshHash)
			must(err)
			_, err = sessions.Update(ctx, id, func(x *domain.Session) error {
				x.Rotate(domain.HashToken("rotated"), now, domain.DefaultSessionLifetimes())
				return nil
			})
			must(err)
		}},
		{"authenticate", func(ctx context.Context) { _, err := sessions.Get(ctx, fresh.ID); must(err) }},
		{"vehicle list", func(ctx context.Context) { _, err := conns.Vehicles(ctx, user); must(err) }},
		{"command submit", func(ctx context.Context) {
			_, err := conns.Vehicle(ctx, user, vehicle)
			must(err)
			c := domain.NewCommand(domain.CommandRequest{UserID: user, VehicleID: vehicle, ConnectionID: connID,
				Action: domain.CommandUnlock, Device: domain.DevicePhone, IdempotencyKey: "explain-key"}, now, 30*time.Second)
			a, err := commands.Admit(ctx, c, now.Add(20*time.Second), ports.CommandRateLimit{Window: 10 * time.Minute, Max: 10}, now)
			must(err)
			cmd = a.Command
			_, err = commands.ByIdempotencyKey(ctx, user, "explain-key")
			must(err)
		}},
		{"command refused in flight", func(ctx context.Context) {
			c := domain.NewCommand(domain.CommandRequest{UserID: user, VehicleID: vehicle, ConnectionID: connID,
				Action: domain.CommandLock, Device: domain.DevicePhone}, now, 30*time.Second)
			if _, err := commands.Admit(ctx, c, now.Add(20*time.Second), ports.CommandRateLimit{Window: 10 * time.Minute, Max: 30}, now); err == nil {
				t.Error("a second command was admitted while one is in flight")
			}
		}},
		{"command worker", func(ctx context.Context) {
			_, err := commands.ClaimAccepted(ctx, now.Add(time.Second), now, now.Add(20*time.Second), 10)
			must(err)
			_, err = commands.Renew(ctx, cmd.ID, now, now.Add(20*time.Second))
			must(err)
			_, err = commands.Update(ctx, cmd.ID, func(c *domain.Command) error {
				if c.Status == domain.CommandAccepted {
					if err := c.Dispatch(now); err != nil {
						return err
					}
				}
				return c.MarkUnknown(now, "UPSTREAM_TIMEOUT", "")
			})
			must(err)
			_, err = commands.Sweep(ctx, now, 100)
			must(err)
		}},
		{"command status", func(ctx context.Context) { _, err := commands.Get(ctx, cmd.ID); must(err) }},
		{"command history", func(ctx context.Context) {
			var err error
			history, err = commands.History(ctx, user, vehicle, "", 20)
			must(err)
			_, err = commands.History(ctx, user, vehicle, history[len(history)-1].ID, 20)
			must(err)
		}},
		{"webhook ingest", func(ctx context.Context) { _, err := inbox.Add(ctx, event); must(err) }},
		{"webhook apply", func(ctx context.Context) {
			evs, err := inbox.Claim(ctx, now, time.Minute, 50)
			must(err)
			_, err = conns.VehiclesBySmartcarID(ctx, "sc-car-1", "sc-user-1")
			must(err)
			_, err = conns.SaveStatus(ctx, domain.VehicleStatus{VehicleID: vehicle, Locked: &locked, ObservedAt: now, FetchedAt: now,
				Source: domain.StatusWebhook})
			must(err)
			_, err = commands.SettleUnknown(ctx, vehicle, true, now.Add(time.Second), now)
			must(err)
			for _, e := range evs {
				must(inbox.Finish(ctx, e.Source, e.ID, domain.InboxProcessed, "applied", true, now))
			}
		}},
		{"retention", func(ctx context.Context) {
			r := domain.DefaultRetention().Cutoffs(now)
			for _, del := range []func() (int, error){
				func() (int, error) { return sessions.DeleteEnded(ctx, r.SessionsEnded, 1000) },
				func() (int, error) { return sessions.DeleteRotatedBefore(ctx, r.RefreshRotated, 1000) },
				func() (int, error) { return commands.DeleteFinished(ctx, r.CommandsCreated, 1000) },
				func() (int, error) { return commands.DeleteAuditBefore(ctx, r.CommandsCreated, 1000) },
				func() (int, error) { return inbox.DeleteFinished(ctx, domain.SourceSmartcar, r.InboxReceived, 1000) },
			} {
				_, err := del()
				must(err)
			}
		}},
	}
}

// seedID is the id the SQL seeds derive from a key, md5(key)::uuid, computed here so that tests
// need no round trip for it.
func seedID(key string) string {
	sum := md5.Sum([]byte(key))
	h := hex.EncodeToString(sum[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// seqScans explains st and returns the large tables its plan reads sequentially, with the plan.
func seqScans(t *testing.T, conn *pgx.Conn, st postgres.Statement, large map[string]bool) ([]string, string) {
	t.Helper()
	var raw []byte
	if err := conn.QueryRow(t.Context(), "EXPLAIN (FORMAT JSON) "+st.SQL, st.Vars...).Scan(&raw); err != nil {
		t.Fatalf("explain %s: %v", oneLine(st.SQL), err)
	}
	var plans []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &plans); err != nil || len(plans) == 0 {
		t.Fatalf("explain %s: %v", oneLine(st.SQL), err)
	}
	var scans []string
	var walk func(n planNode)
	walk = func(n planNode) {
		if n.NodeType == "Seq Scan" && large[n.Relation] {
			scans = append(scans, n.Relation)
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(plans[0].Plan)
	return scans, string(raw)
}

type planNode struct {
	NodeType string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Plans    []planNode `json:"Plans"`
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
