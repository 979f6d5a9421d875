package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/app/webhook"
)

// signInWithCode signs sub in on one app with the authorization code the iOS sheet hands over
// alongside the identity token.
func (e *env) signInWithCode(sub, clientID, code, install, device string) response {
	e.t.Helper()
	n := e.nonce()
	tok := e.mint(sub, n, func(o *applesim.MintOptions) { o.Audience = clientID })
	return e.do("POST", "/v1/auth/apple", map[string]string{
		"identity_token": tok, "nonce": n, "authorization_code": code, "install_id": install, "device": device,
	}, "")
}

// signInPhoneAndWatch signs sub in on the phone and on the watch, each with an authorization code
// of its own app, so the account holds two Apple grants; it returns the phone's answer and the
// user id.
func (e *env) signInPhoneAndWatch(sub string) (response, string) {
	e.t.Helper()
	phone := e.signInWithCode(sub, audience, e.apple.IssueAuthorizationCode(sub, audience), "install-phone", "phone")
	e.expect(phone, http.StatusOK, "")
	e.expect(e.signInWithCode(sub, watchAudience, e.apple.IssueAuthorizationCode(sub, watchAudience), "install-watch", "watch"),
		http.StatusOK, "")
	return phone, phone.body["user"].(map[string]any)["id"].(string)
}

// appleKeyLines are the base64 lines of the team's .p8 key, secrets no log line may carry.
func (e *env) appleKeyLines() []string {
	lines := strings.Split(strings.TrimSpace(e.infra.appleKey), "\n")
	return lines[1 : len(lines)-1]
}

// appleGrantRows counts the sealed Apple refresh tokens of user.
func (e *env) appleGrantRows(user string) int {
	e.t.Helper()
	return e.scalar(`SELECT count(*) FROM sealed_secrets WHERE purpose = 'apple.refresh_token' AND user_id = $1`, user)
}

// assertNoAppleTokenLeaks scans responses, logs and the database for every refresh token the
// Apple simulator issued.
func (e *env) assertNoAppleTokenLeaks() {
	e.t.Helper()
	tokens := e.apple.RefreshTokens()
	if len(tokens) == 0 {
		e.t.Fatal("the Apple simulator issued no refresh token; the scan would pass vacuously")
	}
	e.mu.Lock()
	bodies := strings.Join(e.bodies, "\n")
	e.mu.Unlock()
	dump, logs := e.dumpDatabase(), e.logs.String()
	for _, tok := range tokens {
		if strings.Contains(bodies, tok) || strings.Contains(dump, tok) || strings.Contains(logs, tok) {
			e.t.Fatal("an Apple refresh token appears in a response, the logs or the database in clear")
		}
	}
}

// TestAccountDeletionRevokesSignInWithApple: the phone's and the watch's sign-ins bring
// authorization codes; their refresh tokens are kept sealed, and deleting the account revokes
// both at Apple (App Store guideline 5.1.1(v)) before the account goes.
func TestAccountDeletionRevokesSignInWithApple(t *testing.T) {
	e := startServer(t)
	sub := applesim.NewSubject()
	phone, user := e.signInPhoneAndWatch(sub)
	if n := e.appleGrantRows(user); n != 2 {
		t.Fatalf("%d sealed Apple grants, want one per app", n)
	}
	for _, aud := range []string{audience, watchAudience} {
		if !e.apple.HasActiveGrant(sub, aud) {
			t.Fatalf("no live grant at Apple for %s after sign-in", aud)
		}
	}
	e.assertNoAppleTokenLeaks()

	before := e.apple.Stats().Revocations
	e.expect(e.do("DELETE", "/v1/me", nil, phone.str("access_token")), http.StatusNoContent, "")
	if n := e.apple.Stats().Revocations - before; n != 2 {
		t.Fatalf("Apple revoked %d grants, want 2", n)
	}
	for _, aud := range []string{audience, watchAudience} {
		if e.apple.HasActiveGrant(sub, aud) {
			t.Errorf("the grant for %s is still live at Apple after account deletion", aud)
		}
	}
	e.assertNoRowsOf(user)
	e.assertNoAppleTokenLeaks()
}

// TestSignInRejectsBadAuthorizationCodes: a used code, another client's code and another Apple
// account's code fail the sign-in with 401 INVALID_AUTHORIZATION_CODE and create nothing.
func TestSignInRejectsBadAuthorizationCodes(t *testing.T) {
	e := startServer(t)
	sub, other := applesim.NewSubject(), applesim.NewSubject()
	used := e.apple.IssueAuthorizationCode(sub, audience)
	e.expect(e.signInWithCode(sub, audience, used, "install-1", "phone"), http.StatusOK, "")
	users := e.count("users")

	newcomer := applesim.NewSubject()
	for name, code := range map[string]string{
		"used":                    used,
		"another client's":        e.apple.IssueAuthorizationCode(newcomer, watchAudience),
		"another apple account's": e.apple.IssueAuthorizationCode(other, audience),
		"made up":                 "c0123456789abcdef.0.abcd.xyz",
	} {
		t.Run(name, func(t *testing.T) {
			e.expect(e.signInWithCode(newcomer, audience, code, "install-2", "phone"), http.StatusUnauthorized, "INVALID_AUTHORIZATION_CODE")
		})
	}
	if n := e.count("users"); n != users {
		t.Fatalf("%d users after refused sign-ins, want %d", n, users)
	}
}

// TestSignInWhileAppleTokenEndpointIsDown: the user is signed in all the same, the server says in
// its log that the refresh token was not kept, and a later sign-in keeps one.
func TestSignInWhileAppleTokenEndpointIsDown(t *testing.T) {
	e := startServer(t)
	sub := applesim.NewSubject()
	e.apple.Fail(applesim.FailTokenServerError)
	r := e.signInWithCode(sub, audience, e.apple.IssueAuthorizationCode(sub, audience), "install-1", "phone")
	e.expect(r, http.StatusOK, "")
	user := r.body["user"].(map[string]any)["id"].(string)
	e.expect(e.do("GET", "/v1/me", nil, r.str("access_token")), http.StatusOK, "")
	if n := e.appleGrantRows(user); n != 0 {
		t.Fatalf("%d Apple grants stored while Apple failed", n)
	}
	if !strings.Contains(e.logs.String(), "apple refresh token not kept") {
		t.Fatal("the server did not log the missing refresh token")
	}
	e.apple.Fail(applesim.FailNone)
	e.expect(e.signInWithCode(sub, audience, e.apple.IssueAuthorizationCode(sub, audience), "install-1", "phone"), http.StatusOK, "")
	if n := e.appleGrantRows(user); n != 1 {
		t.Fatalf("%d Apple grants after Apple recovered, want 1", n)
	}
}

// TestAccountDeletionWhileAppleIsDown: Apple's revoke endpoint failing leaves the account in
// place behind a 202 with its sessions ended; the inbox worker revokes and finishes the deletion
// once Apple is back.
func TestAccountDeletionWhileAppleIsDown(t *testing.T) {
	first := startServer(t)
	e, _ := first.replica(fx.Supply(webhook.Config{PollInterval: 50 * time.Millisecond, RetryBase: 200 * time.Millisecond,
		RetryMax: time.Second}))
	sub := applesim.NewSubject()
	r := e.signInWithCode(sub, audience, e.apple.IssueAuthorizationCode(sub, audience), "install-1", "phone")
	e.expect(r, http.StatusOK, "")
	user, access := r.body["user"].(map[string]any)["id"].(string), r.str("access_token")

	e.apple.Fail(applesim.FailTokenServerError)
	e.expect(e.do("DELETE", "/v1/me", nil, access), http.StatusAccepted, "")
	e.expect(e.do("GET", "/v1/me", nil, access), http.StatusUnauthorized, "")
	if n := e.appleGrantRows(user); n != 1 || !e.apple.HasActiveGrant(sub, audience) {
		t.Fatalf("%d grants kept (live at Apple: %v) while Apple is down, want the grant kept", n, e.apple.HasActiveGrant(sub, audience))
	}
	e.apple.Fail(applesim.FailNone)
	if row := e.processed("account", user); row.status != "processed" || row.outcome != "account_deleted" {
		t.Fatalf("deletion job: %+v", row)
	}
	if e.apple.HasActiveGrant(sub, audience) {
		t.Fatal("the grant is live at Apple after the deletion finished")
	}
	e.assertNoRowsOf(user)
}
