package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/betterkey/backend/adapters/sessiontoken"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// badCase is one request that must be refused: its exact status and stable code, and nothing
// written anywhere.
type badCase struct {
	name   string
	method string
	path   string // {vehicle}: the owner's car; {theirs}: another user's car
	ctype  string // "-" sends none; "" sends application/json
	body   string
	auth   string // a token name (see tokens below) or a raw Authorization value with "raw:"
	header map[string]string
	status int
	code   string // the problem code; for Connect, the Connect code
}

// The catalog of bad input, on both transports: malformed, oversized and wrong-type bodies,
// unicode and NUL, bad and expired tokens, bad ids, headers, query values, Idempotency-Keys and
// forged webhooks. Every case gets its exact status and code, no 5xx, and no row anywhere is
// added, removed or changed.
func TestBadInputCatalog(t *testing.T) {
	e := startServer(t)
	owner, cars := e.garage(1)
	_, theirs := e.garage(1)
	cases := badInputCases()
	if len(cases) < 150 {
		t.Fatalf("the catalog has %d cases, want at least 150", len(cases))
	}
	tokens := e.catalogTokens(owner)
	var fivexx int
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot(t)
			path := strings.NewReplacer("{vehicle}", cars[0].id, "{theirs}", theirs[0].id).Replace(tc.path)
			status, code, raw := e.send400(t, tc, path, tokens)
			if status >= 500 {
				fivexx++
			}
			if status != tc.status || code != tc.code {
				t.Errorf("%s: %d %s, want %d %s (%.300s)", tc.name, status, code, tc.status, tc.code, raw)
			}
			if after := e.snapshot(t); after != before {
				t.Errorf("a refused request changed the database:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	t.Logf("bad-input catalog: %d cases, %d answered 5xx", len(cases), fivexx)
}

// catalogTokens are the credentials the cases name.
func (e *env) catalogTokens(owner session) map[string]string {
	e.t.Helper()
	signer, err := sessiontoken.New(sessiontoken.Config{SigningKey: domain.NewSecret(e.signingKey), Issuer: "betterkey", Audience: "betterkey-app"})
	if err != nil {
		e.t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	expired, err := signer.Issue(ports.AccessClaims{UserID: domain.UserID(owner.userID), SessionID: domain.NewSessionID(), IssuedAt: past, ExpiresAt: past.Add(15 * time.Minute)})
	if err != nil {
		e.t.Fatal(err)
	}
	unknownSession, err := signer.Issue(ports.AccessClaims{UserID: domain.UserID(owner.userID), SessionID: domain.NewSessionID(), IssuedAt: time.Now(), ExpiresAt: time.Now().Add(15 * time.Minute)})
	if err != nil {
		e.t.Fatal(err)
	}
	foreign, _ := sessiontoken.New(sessiontoken.Config{SigningKey: sessiontoken.GenerateKey(), Issuer: "betterkey", Audience: "betterkey-app"})
	forged, _ := foreign.Issue(ports.AccessClaims{UserID: domain.UserID(owner.userID), SessionID: domain.NewSessionID(), IssuedAt: time.Now(), ExpiresAt: time.Now().Add(15 * time.Minute)})
	// One character of the signature changed to another base64url character (not the last one,
	// whose low bits are padding and may decode alike).
	tampered := []byte(owner.access)
	i := len(tampered) - 5
	tampered[i] = map[bool]byte{true: 'B', false: 'A'}[tampered[i] == 'A']
	return map[string]string{
		"owner": owner.access, "expired": expired.Reveal(), "unknown-session": unknownSession.Reveal(),
		"forged": forged.Reveal(), "tampered": string(tampered), "refresh-as-access": owner.refresh,
		"admin": canaryAdminToken,
	}
}

// send400 sends one case and returns its status, its code and the raw body.
func (e *env) send400(t *testing.T, tc badCase, path string, tokens map[string]string) (int, string, string) {
	t.Helper()
	var body io.Reader
	if tc.body != "" {
		body = strings.NewReader(tc.body)
	}
	base := e.servers.HTTPURL()
	if strings.HasPrefix(path, "/betterkey.") {
		base = e.servers.AdminURL()
	}
	req, err := http.NewRequest(tc.method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	switch tc.ctype {
	case "":
		req.Header.Set("Content-Type", "application/json")
	case "-":
	default:
		req.Header.Set("Content-Type", tc.ctype)
	}
	switch {
	case strings.HasPrefix(tc.auth, "raw:"):
		req.Header.Set("Authorization", strings.TrimPrefix(tc.auth, "raw:"))
	case tc.auth != "":
		req.Header.Set("Authorization", "Bearer "+tokens[tc.auth])
	}
	for k, v := range tc.header {
		req.Header.Set(k, v)
	}
	r := e.exchange(req, "")
	code := r.str("code")
	return r.status, code, r.raw
}

// snapshot is every table's row count and a digest of its rows, so a refused request that
// changed, added or removed anything shows. Sessions' last_used_at is left out: a request that
// authenticates touches it, by design.
func (e *env) snapshot(t *testing.T) string {
	t.Helper()
	var out strings.Builder
	e.withDB(func(conn *pgx.Conn) {
		rows, err := conn.Query(t.Context(), `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename NOT LIKE 'goose%' ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, table := range tables {
			q := fmt.Sprintf(`SELECT count(*), coalesce(md5(string_agg(to_jsonb(t)::text, ',' ORDER BY to_jsonb(t)::text)), '') FROM %s t`, pgx.Identifier{table}.Sanitize())
			if table == "sessions" {
				q = `SELECT count(*), coalesce(md5(string_agg((to_jsonb(t) - 'last_used_at' - 'idle_expires_at')::text, ',' ORDER BY t.id)), '') FROM sessions t`
			}
			var n int
			var digest string
			if err := conn.QueryRow(context.Background(), q).Scan(&n, &digest); err != nil {
				t.Fatalf("%s: %v", table, err)
			}
			fmt.Fprintf(&out, "%s=%d:%.8s ", table, n, digest)
		}
	})
	return out.String()
}

// badInputCases builds the catalog.
func badInputCases() []badCase {
	var cs []badCase
	add := func(c badCase) { cs = append(cs, c) }
	const v = "VALIDATION_FAILED"

	// Bodies: every JSON route gets the same mutations of a body it would otherwise take.
	type route struct {
		name, method, path, auth, good string
	}
	routes := []route{
		{"signin", "POST", "/v1/auth/apple", "", `{"identity_token":"x.y.z","nonce":"n","install_id":"i","device":"phone"}`},
		{"refresh", "POST", "/v1/auth/refresh", "", `{"refresh_token":"r"}`},
		{"connect", "POST", "/v1/vehicles/connect", "owner", `{"make":"TESLA"}`},
		{"complete", "POST", "/v1/vehicles/connect/complete", "owner", `{"link":"l"}`},
		{"command", "POST", "/v1/vehicles/{vehicle}/commands", "owner", `{"action":"lock"}`},
	}
	first := func(good string) (string, string) { // the first member's name and the rest of the body
		name, _, _ := strings.Cut(strings.TrimPrefix(good, `{"`), `"`)
		return name, good[1 : len(good)-1]
	}
	for _, r := range routes {
		name, members := first(r.good)
		bodies := []struct {
			what, ctype, body string
			status            int
			code              string
		}{
			{"duplicate name", "", `{` + members + `,` + members + `}`, 400, v},
			{"duplicate name, other value", "", `{` + members + `,"` + name + `":"other"}`, 400, v},
			{"trailing object", "", r.good + ` {"x":1}`, 400, v},
			{"trailing garbage", "", r.good + `garbage`, 400, v},
			{"two objects no space", "", r.good + r.good, 400, v},
			{"NUL in a value", "", `{"` + name + `":"a\u0000b"}`, 400, v},
			{"lone surrogate", "", `{"` + name + `":"\udc00"}`, 400, v},
			{"invalid UTF-8", "", "{\"" + name + "\":\"\xc3\x28\"}", 400, v},
			{"unknown field", "", `{` + members + `,"is_admin":true}`, 400, v},
			{"wrong type", "", `{"` + name + `":12}`, 400, v},
			{"array", "", `[` + r.good + `]`, 400, v},
			{"null", "", `null`, 400, v},
			{"string", "", `"x"`, 400, v},
			{"truncated", "", r.good[:len(r.good)-2], 400, v},
			{"single quotes", "", strings.ReplaceAll(r.good, `"`, `'`), 400, v},
			{"trailing comma", "", r.good[:len(r.good)-1] + `,}`, 400, v},
			{"text/plain", "text/plain", r.good, 415, "UNSUPPORTED_MEDIA_TYPE"},
			{"xml", "application/xml", `<a/>`, 415, "UNSUPPORTED_MEDIA_TYPE"},
			{"form", "application/x-www-form-urlencoded", name + "=x", 415, "UNSUPPORTED_MEDIA_TYPE"},
			{"no content type", "-", r.good, 415, "UNSUPPORTED_MEDIA_TYPE"},
			{"latin1 charset", "application/json; charset=latin1", r.good, 415, "UNSUPPORTED_MEDIA_TYPE"},
			{"oversized", "", `{"` + name + `":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "PAYLOAD_TOO_LARGE"},
			{"deep nesting", "", strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5000), 400, v},
		}
		if r.name == "connect" { // its body is optional, so the empty one is fine; "{}" too
			bodies = append(bodies, struct {
				what, ctype, body string
				status            int
				code              string
			}{"wrong type single_select", "", `{"single_select":"yes"}`, 400, v})
		}
		for _, b := range bodies {
			add(badCase{name: r.name + "/" + b.what, method: r.method, path: r.path, ctype: b.ctype, body: b.body, auth: r.auth, status: b.status, code: b.code})
		}
	}

	// Tokens: every authenticated route refuses every bad credential.
	authed := []struct{ method, path string }{
		{"GET", "/v1/me"}, {"DELETE", "/v1/me"}, {"GET", "/v1/me/export"}, {"GET", "/v1/me/sessions"},
		{"POST", "/v1/auth/signout"}, {"GET", "/v1/vehicles"}, {"GET", "/v1/vehicles/{vehicle}"},
		{"GET", "/v1/vehicles/{vehicle}/status"}, {"POST", "/v1/vehicles/{vehicle}/commands"},
		{"GET", "/v1/vehicles/{vehicle}/commands"}, {"DELETE", "/v1/vehicles/{vehicle}"}, {"POST", "/v1/vehicles/connect"},
	}
	creds := []struct{ what, auth, code string }{
		{"no token", "", "UNAUTHENTICATED"},
		{"expired", "expired", "ACCESS_TOKEN_EXPIRED"},
		{"foreign key", "forged", "INVALID_ACCESS_TOKEN"},
		{"tampered", "tampered", "INVALID_ACCESS_TOKEN"},
		{"refresh token as access", "refresh-as-access", "INVALID_ACCESS_TOKEN"},
		{"session that does not exist", "unknown-session", "SESSION_REVOKED"},
		{"basic scheme", "raw:Basic dXNlcjpwYXNz", "UNAUTHENTICATED"},
		{"two spaces", "raw:Bearer  x.y.z", "UNAUTHENTICATED"},
	}
	for _, r := range authed {
		for _, c := range creds {
			body := ""
			if r.method == "POST" {
				body = `{"action":"lock"}`
				if r.path == "/v1/auth/signout" || r.path == "/v1/vehicles/connect" {
					body = `{}`
				}
			}
			add(badCase{name: "auth/" + r.method + " " + r.path + "/" + c.what, method: r.method, path: r.path, body: body, auth: c.auth, status: 401, code: c.code})
		}
	}

	// Ids: not a uuid, another user's, one that does not exist, or a path trick.
	ids := []struct {
		what, id string
		status   int
		code     string
	}{
		// An id that cannot be one names nothing: 404, as an unknown one.
		{"not a uuid", "car-1", 404, "NOT_FOUND"},
		{"uppercase uuid", "6BA7B810-9DAD-41D1-80B4-00C04FD430C8", 404, "NOT_FOUND"},
		{"unknown uuid", "6ba7b810-9dad-41d1-80b4-00c04fd430c8", 404, "NOT_FOUND"},
		{"another user's", "{theirs}", 404, "NOT_FOUND"},
		{"dot dot", "..%2F..%2Fme", 404, "NOT_FOUND"},
		{"NUL", "a%00b", 400, v},
		{"very long", strings.Repeat("a", 2000), 404, "NOT_FOUND"},
	}
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/vehicles/%s", ""}, {"GET", "/v1/vehicles/%s/status", ""}, {"POST", "/v1/vehicles/%s/commands", `{"action":"lock"}`},
		{"GET", "/v1/vehicles/%s/commands", ""}, {"DELETE", "/v1/vehicles/%s", ""}, {"GET", "/v1/commands/%s", ""},
		{"DELETE", "/v1/me/sessions/%s", ""},
	} {
		for _, id := range ids {
			add(badCase{name: "id/" + r.method + " " + r.path + "/" + id.what, method: r.method, path: fmt.Sprintf(r.path, id.id), body: r.body, auth: "owner", status: id.status, code: id.code})
		}
	}

	// Paths and methods.
	for _, p := range []struct {
		what, method, path string
		status             int
		code               string
	}{
		{"dot dot", "DELETE", "/v1/me/sessions/../me", 404, "NOT_FOUND"},
		{"double slash", "GET", "/v1//me", 404, "NOT_FOUND"},
		{"dot", "GET", "/v1/./me", 404, "NOT_FOUND"},
		{"trailing slash", "GET", "/v1/me/", 404, "NOT_FOUND"},
		{"control character", "GET", "/v1/me%0A", 400, v},
		{"unknown route", "GET", "/v1/nope", 404, "NOT_FOUND"},
		{"PUT on a POST route", "PUT", "/v1/auth/refresh", 405, "METHOD_NOT_ALLOWED"},
		{"DELETE on a GET route", "DELETE", "/v1/vehicles", 405, "METHOD_NOT_ALLOWED"},
		{"PATCH on me", "PATCH", "/v1/me", 405, "METHOD_NOT_ALLOWED"},
		{"GET on sign-in", "GET", "/v1/auth/apple", 405, "METHOD_NOT_ALLOWED"},
		{"POST on a webhook GET", "GET", "/v1/webhooks/smartcar", 405, "METHOD_NOT_ALLOWED"},
	} {
		add(badCase{name: "path/" + p.what, method: p.method, path: p.path, auth: "owner", status: p.status, code: p.code})
	}

	// Query values.
	for _, q := range []struct{ what, path string }{
		{"wait negative", "/v1/commands/{cmd}?wait=-1"}, {"wait text", "/v1/commands/{cmd}?wait=soon"},
		{"wait too long", "/v1/commands/{cmd}?wait=21"}, {"wait fraction", "/v1/commands/{cmd}?wait=1.5"},
		{"limit zero", "/v1/vehicles/{vehicle}/commands?limit=0"}, {"limit text", "/v1/vehicles/{vehicle}/commands?limit=many"},
		{"limit too large", "/v1/vehicles/{vehicle}/commands?limit=101"}, {"before not an id", "/v1/vehicles/{vehicle}/commands?before=x"},
	} {
		path := strings.ReplaceAll(q.path, "{cmd}", "6ba7b810-9dad-41d1-80b4-00c04fd430c8")
		add(badCase{name: "query/" + q.what, method: "GET", path: path, auth: "owner", status: 400, code: v})
	}

	// Idempotency-Keys.
	for _, k := range []struct{ what, key string }{
		{"too long", strings.Repeat("k", 65)}, {"space", "a b"}, {"slash", "a/b"}, {"unicode", "clé"}, {"quote", `a"b`},
	} {
		add(badCase{name: "idempotency/" + k.what, method: "POST", path: "/v1/vehicles/{vehicle}/commands", body: `{"action":"lock"}`,
			auth: "owner", header: map[string]string{"Idempotency-Key": k.key}, status: 400, code: "IDEMPOTENCY_KEY_INVALID"})
	}
	// Actions.
	for _, a := range []string{"LOCK", "open", "", "lock "} {
		add(badCase{name: "action/" + fmt.Sprintf("%q", a), method: "POST", path: "/v1/vehicles/{vehicle}/commands",
			body: fmt.Sprintf(`{"action":%q}`, a), auth: "owner", status: 400, code: "ACTION_INVALID"})
	}

	// Forged webhooks.
	event := `{"eventId":"forged-1","eventType":"VEHICLE_STATE","data":{}}`
	for _, w := range []struct{ what, sig string }{
		{"no signature", ""}, {"wrong secret", "sha256"}, {"uppercase hex", "UPPER"}, {"empty", "empty"}, {"truncated", "short"},
	} {
		h := map[string]string{}
		switch w.sig {
		case "sha256":
			h["SC-Signature"] = strings.Repeat("ab", 32)
		case "UPPER":
			h["SC-Signature"] = strings.Repeat("AB", 32)
		case "empty":
			h["SC-Signature"] = ""
		case "short":
			h["SC-Signature"] = "abcd"
		}
		add(badCase{name: "webhook/smartcar " + w.what, method: "POST", path: "/v1/webhooks/smartcar", body: event, header: h, status: 401, code: "INVALID_SIGNATURE"})
	}
	for _, w := range []struct {
		what, body string
		status     int
		code       string
	}{
		{"apple: not a JWS", `{"payload":"not-a-jws"}`, 401, "INVALID_NOTIFICATION"},
		{"apple: no payload", `{}`, 400, v},
		{"apple: duplicate payload", `{"payload":"a","payload":"b"}`, 400, v},
		{"apple: trailing", `{"payload":"a"} x`, 400, v},
	} {
		add(badCase{name: "webhook/" + w.what, method: "POST", path: "/v1/apple/notifications", body: w.body, status: w.status, code: w.code})
	}
	// Apple's media type is not held against it (a 415 would only make Apple retry): the
	// signature still decides.
	add(badCase{name: "webhook/apple: text/plain, not a JWS", method: "POST", path: "/v1/apple/notifications", ctype: "text/plain",
		body: `{"payload":"not-a-jws"}`, status: 401, code: "INVALID_NOTIFICATION"})

	// The admin API over Connect's JSON protocol.
	const svc = "/betterkey.admin.v1.AdminService/"
	for _, c := range []struct {
		what, method, body, auth, ctype string
		status                          int
		code                            string
	}{
		{"no token", "GetUser", `{"userId":"6ba7b810-9dad-41d1-80b4-00c04fd430c8"}`, "", "", 401, "unauthenticated"},
		{"wrong token", "GetUser", `{"userId":"6ba7b810-9dad-41d1-80b4-00c04fd430c8"}`, "raw:Bearer wrong-token-wrong-token-wrong-token-00", "", 401, "unauthenticated"},
		{"app token", "GetUser", `{"userId":"6ba7b810-9dad-41d1-80b4-00c04fd430c8"}`, "owner", "", 401, "unauthenticated"},
		{"basic scheme", "GetUser", `{}`, "raw:Basic dXNlcjpwYXNz", "", 401, "unauthenticated"},
		{"bad user id", "GetUser", `{"userId":"nope"}`, "admin", "", 400, "invalid_argument"},
		{"unknown user", "GetUser", `{"userId":"6ba7b810-9dad-41d1-80b4-00c04fd430c8"}`, "admin", "", 404, "not_found"},
		{"malformed json", "GetUser", `{"userId":`, "admin", "", 400, "invalid_argument"},
		// Unknown fields are protobuf's forward compatibility and pass; a repeated one does not.
		{"duplicate field", "GetUser", `{"userId":"6ba7b810-9dad-41d1-80b4-00c04fd430c8","userId":"x"}`, "admin", "", 400, "invalid_argument"},
		{"revoke everyone without the phrase", "RevokeAllSessions", `{"confirm":"yes"}`, "admin", "", 400, "invalid_argument"},
		{"retire version 0", "RetireKeyVersions", `{"minVersion":0}`, "admin", "", 400, "invalid_argument"},
		{"overlap too long", "RotateSessionSigningKey", `{"overlapSeconds":"3601"}`, "admin", "", 400, "invalid_argument"},
		{"overlap negative", "RotateSessionSigningKey", `{"overlapSeconds":"-1"}`, "admin", "", 400, "invalid_argument"},
		{"revoke session of nobody", "RevokeSession", `{"userId":"nope","sessionId":"x"}`, "admin", "", 400, "invalid_argument"},
		{"grants of a bad id", "RevokeUserVehicleGrants", `{"userId":"../x"}`, "admin", "", 400, "invalid_argument"},
		{"unknown procedure", "Nope", `{}`, "admin", "", 404, ""},
		{"xml", "GetUser", `<a/>`, "admin", "application/xml", 415, ""},
	} {
		add(badCase{name: "connect/" + c.what, method: "POST", path: svc + c.method, body: c.body, auth: c.auth, ctype: c.ctype, status: c.status, code: c.code})
	}
	return cs
}
