package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/fx"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/app/webhook"
)

// owner is a signed-in Apple subject with a Smartcar account of two cars connected.
type owner struct {
	subject string
	session session
	scUser  smartcarsim.User
	cars    []car
}

// linkedOwner signs a new Apple subject in and connects a fresh Smartcar account with two cars.
func (e *env) linkedOwner() owner {
	e.t.Helper()
	sc := e.sc.CreateUser(smartcarsim.VehicleSpec{Make: "TESLA", Model: "Model 3", Year: 2023},
		smartcarsim.VehicleSpec{Make: "FORD", Model: "Mustang Mach-E", Year: 2022})
	if err := e.sc.SetConsentUser(sc.ID); err != nil {
		e.t.Fatal(err)
	}
	o := owner{subject: applesim.NewSubject(), scUser: sc}
	o.session = e.signIn(o.subject, "install-phone", "phone")
	if q, _ := e.connect(o.session.access, ""); q.Get("status") != "linked" {
		e.t.Fatalf("connect: %v", q)
	}
	byModel := map[string]string{}
	for _, v := range e.vehicles(o.session.access) {
		byModel[v["model"].(string)] = v["id"].(string)
	}
	o.cars = []car{{id: byModel["Model 3"], sc: sc.VehicleIDs[0]}, {id: byModel["Mustang Mach-E"], sc: sc.VehicleIDs[1]}}
	return o
}

// userRows counts, per table, the rows that belong to user, read straight from PostgreSQL.
func (e *env) userRows(user string) map[string]int {
	e.t.Helper()
	out := map[string]int{}
	for table, column := range map[string]string{"users": "id", "sessions": "user_id", "connections": "user_id",
		"vehicles": "user_id", "sealed_secrets": "user_id", "commands": "user_id", "connect_states": "user_id",
		"pending_links": "user_id"} {
		out[table] = e.scalar("SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()+" WHERE "+pgx.Identifier{column}.Sanitize()+" = $1", user)
	}
	return out
}

func (e *env) assertNoRowsOf(user string) {
	e.t.Helper()
	for table, n := range e.userRows(user) {
		if n != 0 {
			e.t.Errorf("%d rows of the deleted user left in %s", n, table)
		}
	}
}

func TestExportThenDeleteAccount(t *testing.T) {
	e := startServer(t)
	o := e.linkedOwner()
	watch := e.signIn(o.subject, "install-watch", "watch")
	lock := e.lock(o.session.access, o.cars[0].id, "lock")
	e.expect(lock, http.StatusOK, "")
	// Someone else, whose data must survive the deletion.
	bystander := e.linkedOwner()

	x := e.do("GET", "/v1/me/export", nil, o.session.access)
	e.expect(x, http.StatusOK, "")
	acct, _ := x.body["account"].(map[string]any)
	if acct["id"] != o.session.userID || acct["created_at"] == nil || acct["is_private_email"] == nil {
		t.Fatalf("export account %v", acct)
	}
	if sessions, _ := x.body["sessions"].([]any); len(sessions) != 2 {
		t.Fatalf("export has %d sessions, want 2: %s", len(sessions), x.raw)
	}
	vehicles, _ := x.body["vehicles"].([]any)
	got := map[string]map[string]any{}
	for _, v := range vehicles {
		m := v.(map[string]any)
		got[m["id"].(string)] = m
	}
	if len(got) != 2 || got[o.cars[0].id]["make"] != "TESLA" || got[o.cars[0].id]["model"] != "Model 3" ||
		got[o.cars[0].id]["year"] != float64(2023) || got[o.cars[0].id]["status"] != "active" || got[o.cars[1].id]["linked_at"] == nil {
		t.Fatalf("export vehicles %s", x.raw)
	}
	commands, _ := x.body["commands"].([]any)
	if len(commands) != 1 {
		t.Fatalf("export has %d commands, want 1: %s", len(commands), x.raw)
	}
	if c := commands[0].(map[string]any); c["id"] != lock.str("id") || c["vehicle_id"] != o.cars[0].id || c["action"] != "lock" ||
		c["status"] != "succeeded" || c["finished_at"] == nil {
		t.Fatalf("export command %v", c)
	}
	// No secret and no Smartcar identifier: the simulator's tokens, our session tokens, its ids.
	for _, s := range append(e.sc.IssuedTokens(), o.session.access, o.session.refresh, watch.refresh, o.scUser.ID,
		o.cars[0].sc, o.cars[1].sc) {
		if strings.Contains(x.raw, s) {
			t.Fatal("the export carries a token or a Smartcar identifier")
		}
	}
	for _, field := range []string{"refresh", "hash", "ciphertext", "smartcar", "token"} {
		if strings.Contains(strings.ToLower(x.raw), field) {
			t.Fatalf("the export has a %q field: %s", field, x.raw)
		}
	}

	before := e.sc.Stats().Disconnects
	e.expect(e.do("DELETE", "/v1/me", nil, o.session.access), http.StatusNoContent, "")
	if n := e.sc.Stats().Disconnects - before; n != 2 {
		t.Fatalf("Smartcar received %d disconnects, want 2", n)
	}
	e.assertNoRowsOf(o.session.userID)
	e.assertAuditOf(1, o.session.userID, o.cars[0].id, o.cars[1].id)
	for table, n := range e.userRows(bystander.session.userID) {
		if want := map[string]int{"users": 1, "sessions": 1, "connections": 1, "vehicles": 2, "sealed_secrets": 1}[table]; n != want {
			t.Errorf("the other user has %d rows in %s, want %d", n, table, want)
		}
	}
	e.expect(e.do("GET", "/v1/me", nil, o.session.access), http.StatusUnauthorized, "")
	e.expect(e.do("GET", "/v1/me/export", nil, watch.access), http.StatusUnauthorized, "")
	e.expect(e.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": o.session.refresh}, ""), http.StatusUnauthorized, "")
	e.expect(e.do("DELETE", "/v1/me", nil, o.session.access), http.StatusUnauthorized, "")

	// The same Apple ID signs in to a new, empty account.
	fresh := e.signIn(o.subject, "install-phone", "phone")
	if fresh.userID == "" || fresh.userID == o.session.userID {
		t.Fatalf("sign-in after deletion got user %q, want a new one", fresh.userID)
	}
	if n := len(e.vehicles(fresh.access)); n != 0 {
		t.Fatalf("the new account has %d vehicles", n)
	}
	e.assertNoTokenLeaks()
}

// TestDeleteAccountWhileSmartcarIsDown: a disconnect Smartcar does not take leaves the account
// (and its vehicles) in place behind a 202, with its sessions revoked at once; the server's
// inbox worker finishes the deletion once Smartcar is back, without the owner doing anything.
func TestDeleteAccountWhileSmartcarIsDown(t *testing.T) {
	first := startServer(t)
	o := first.linkedOwner() // through the server Smartcar redirects to
	// The deletion goes to a replica whose worker retries quickly; the first one's may help.
	e, _ := first.replica(fx.Supply(webhook.Config{PollInterval: 50 * time.Millisecond, RetryBase: 200 * time.Millisecond,
		RetryMax: time.Second}))
	rows := e.userRows(o.session.userID)

	e.sc.SetFault(smartcarsim.EndpointDisconnect, smartcarsim.Fault{Status: http.StatusInternalServerError})
	e.expect(e.do("DELETE", "/v1/me", nil, o.session.access), http.StatusAccepted, "")
	e.expect(e.do("GET", "/v1/me", nil, o.session.access), http.StatusUnauthorized, "") // access ended at once
	after := e.userRows(o.session.userID)
	for _, table := range []string{"users", "connections", "vehicles", "sealed_secrets"} {
		if after[table] != rows[table] {
			t.Errorf("%s: %d rows while Smartcar is down, want the %d before", table, after[table], rows[table])
		}
	}

	// While the erasure is pending, the account cannot be signed in to.
	n := e.nonce()
	e.expect(e.do("POST", "/v1/auth/apple", map[string]string{"identity_token": e.mint(o.subject, n, nil), "nonce": n,
		"install_id": "install-again", "device": "phone"}, ""), http.StatusConflict, "ACCOUNT_DELETION_PENDING")

	before := e.sc.Stats().Disconnects
	e.sc.ClearFaults()
	if r := e.processed("account", o.session.userID); r.status != "processed" || r.outcome != "account_deleted" {
		t.Fatalf("deletion job: %+v", r)
	}
	if n := e.sc.Stats().Disconnects - before; n != 2 {
		t.Fatalf("Smartcar received %d disconnects from the worker, want 2", n)
	}
	e.assertNoRowsOf(o.session.userID)
	e.expect(e.do("DELETE", "/v1/me", nil, o.session.access), http.StatusUnauthorized, "")
	// Once it is done, the same Apple ID signs in to a new account.
	if fresh := e.signIn(o.subject, "install-again", "phone"); fresh.userID == o.session.userID {
		t.Fatal("sign-in after the erasure found the erased account")
	}
	e.assertNoTokenLeaks()
}

// assertAuditOf checks that the audit log holds n entries and that none of them names the
// erased account or its vehicles.
func (e *env) assertAuditOf(n int, ids ...string) {
	e.t.Helper()
	got := 0
	e.withDB(func(conn *pgx.Conn) {
		rows, err := conn.Query(e.t.Context(), `SELECT id::text, account_pseudonym::text, vehicle_pseudonym::text FROM command_audit`)
		if err != nil {
			e.t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, account, vehicle string
			if err := rows.Scan(&id, &account, &vehicle); err != nil {
				e.t.Fatal(err)
			}
			got++
			for _, x := range ids {
				if id == x || account == x || vehicle == x {
					e.t.Errorf("audit entry %s names %s", id, x)
				}
			}
		}
		if err := rows.Err(); err != nil {
			e.t.Fatal(err)
		}
	})
	if got != n {
		e.t.Errorf("%d audit entries, want %d", got, n)
	}
}
