package e2e

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestRetentionJanitorAcrossReplicas: two replicas schedule the janitor every second; what is past
// its retention (a session ended 40 days ago, a Smartcar event settled 8 days ago) goes, what is
// not (the live session, a fresh settled event, a pending old one) stays, and the deletions show in
// the replicas' metrics.
func TestRetentionJanitorAcrossReplicas(t *testing.T) {
	fast := func(v map[string]string) { v["BETTERKEY_RETENTION_INTERVAL"] = "1s" }
	a := startServer(t, fast)
	b := startOn(t, a.infra, freeAddr(t), fast)

	old := a.signIn("sub-retention", "install-1", "phone")
	live := a.signIn("sub-retention", "install-1", "phone") // replaces the first session
	a.withDB(func(conn *pgx.Conn) {
		mustExec(t, conn, `UPDATE sessions SET revoked_at = now() - interval '40 days' WHERE revoked_at IS NOT NULL AND user_id = $1`, old.userID)
		for i, ev := range []struct{ status, age string }{{"processed", "8 days"}, {"processed", "1 day"}, {"pending", "30 days"}} {
			mustExec(t, conn, `INSERT INTO webhook_inbox (source, event_id, event_type, payload, status, received_at, available_at)
				VALUES ('smartcar', $1, 'VEHICLE_STATE', '{}', $2, now() - $3::interval, now() + interval '1 year')`,
				"retention-"+string(rune('a'+i)), ev.status, ev.age)
		}
	})
	waitFor(t, "the janitor to delete the ended session and the old event", func() bool {
		return a.scalar(`SELECT count(*) FROM sessions WHERE user_id = $1`, old.userID) == 1 &&
			a.scalar(`SELECT count(*) FROM webhook_inbox WHERE event_id LIKE 'retention-%'`) == 2
	})
	if n := a.scalar(`SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL`, live.userID); n != 1 {
		t.Fatalf("live sessions = %d, want the one kept", n)
	}
	if n := a.scalar(`SELECT count(*) FROM webhook_inbox WHERE event_id IN ('retention-b', 'retention-c')`); n != 2 {
		t.Fatalf("kept events = %d, want the fresh settled one and the pending one", n)
	}
	if r := a.do("GET", "/v1/me", nil, live.access); r.status != 200 {
		t.Fatalf("GET /v1/me with the live session: %d", r.status)
	}
	if metricSum(`betterkey_retention_rows_deleted_total{table="sessions"}`, a, b) == 0 {
		t.Fatal("no replica's metrics count the deleted session")
	}
}

func mustExec(t *testing.T, conn *pgx.Conn, q string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(t.Context(), q, args...); err != nil {
		t.Fatal(err)
	}
}
