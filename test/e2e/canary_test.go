package e2e

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
	"github.com/betterkey/backend/gen/betterkey/admin/v1/adminv1connect"
)

// TestNoSecretInLogsOrErrors drives every identity flow, success and failure, and then scans every
// server log line for every secret that crossed the wire, and every error response for the secrets
// the client sent.
func TestNoSecretInLogsOrErrors(t *testing.T) {
	e := startServer(t, func(v map[string]string) {
		v["BETTERKEY_DATABASE_URL"] = strings.Replace(v["BETTERKEY_DATABASE_URL"], "postgres@", "postgres:"+canaryDBPassword+"@", 1)
	})
	var secrets []string
	sub := applesim.NewSubject()

	n := e.nonce()
	idToken := e.mint(sub, n, nil)
	code := e.apple.IssueAuthorizationCode(sub, audience)
	r := e.do("POST", "/v1/auth/apple", map[string]string{"identity_token": idToken, "nonce": n, "install_id": "i", "device": "phone", "authorization_code": code}, "")
	e.expect(r, http.StatusOK, "")
	access, refresh := r.str("access_token"), r.str("refresh_token")
	secrets = append(secrets, n, idToken, access, refresh, code)
	secrets = append(secrets, e.appleKeyLines()...)
	secrets = append(secrets, e.apple.RefreshTokens()...)

	// A refused authorization code.
	n2 := e.nonce()
	e.expect(e.do("POST", "/v1/auth/apple", map[string]string{"identity_token": e.mint(sub, n2, nil), "nonce": n2, "install_id": "i",
		"device": "phone", "authorization_code": "CANARY-AUTH-CODE"}, ""), http.StatusUnauthorized, "INVALID_AUTHORIZATION_CODE")
	secrets = append(secrets, "CANARY-AUTH-CODE")

	// Failures with secrets in them: replayed token and nonce, bad refresh, bad bearer, bad admin token.
	e.do("POST", "/v1/auth/apple", map[string]string{"identity_token": idToken, "nonce": n, "install_id": "i", "device": "phone"}, "")
	e.do("POST", "/v1/auth/apple", map[string]string{"identity_token": idToken + "CANARYTAIL", "nonce": "CANARY-NONCE", "install_id": "i", "device": "phone"}, "")
	r2 := e.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": refresh}, "")
	secrets = append(secrets, r2.str("access_token"), r2.str("refresh_token"), "CANARYTAIL", "CANARY-NONCE", "CANARY-REFRESH", "CANARY-BEARER")
	e.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": refresh}, "")
	e.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": "CANARY-REFRESH"}, "")
	e.do("GET", "/v1/me", nil, "CANARY-BEARER")
	e.do("GET", "/v1/me", nil, access)

	c := adminv1connect.NewAdminServiceClient(http.DefaultClient, e.servers.AdminURL(), bearer(canaryAdminToken))
	if _, err := c.ListUserSessions(t.Context(), &adminv1.ListUserSessionsRequest{UserId: r.body["user"].(map[string]any)["id"].(string)}); err != nil {
		t.Fatal(err)
	}
	bad := adminv1connect.NewAdminServiceClient(http.DefaultClient, e.servers.AdminURL(), bearer("CANARY-WRONG-ADMIN-TOKEN-xxxxxxxxxxxxxxxxxxxx"))
	_, _ = bad.ListUserSessions(t.Context(), &adminv1.ListUserSessionsRequest{UserId: "x"})
	secrets = append(secrets, canaryAdminToken, "CANARY-WRONG-ADMIN-TOKEN", canaryDBPassword, e.signingKey)

	logs := e.logs.String()
	if !strings.Contains(logs, `"route":"/v1/auth/apple"`) {
		t.Fatal("the scan saw no request logs; it would pass vacuously")
	}
	e.noSecretIn(secrets)
}

// noSecretIn fails the test for every secret found in a log line or an error response; success
// bodies carry the tokens they issue.
func (e *env) noSecretIn(secrets []string) {
	e.t.Helper()
	logs := e.logs.String()
	for _, s := range secrets {
		if s == "" {
			e.t.Fatal("a canary secret is empty; the flow did not run as intended")
		}
		if strings.Contains(logs, s) {
			e.t.Errorf("a secret of %d bytes appears in the logs", len(s))
		}
	}
	for _, body := range e.bodies {
		if !strings.Contains(body, `"code"`) {
			continue
		}
		for _, s := range secrets {
			if strings.Contains(body, s) {
				e.t.Errorf("an error response contains a secret of %d bytes", len(s))
			}
		}
	}
}

// TestNoSecretInLogsVehicleFlows is the same scan over the vehicle flows: the Smartcar Connect
// code and the OAuth state of the callback URL, the pending link the app confirms, the tokens
// Smartcar issued, and the signatures of webhook deliveries, good and forged, never reach a log
// line; and no error response carries one.
func TestNoSecretInLogsVehicleFlows(t *testing.T) {
	e := startServer(t)
	scUser := e.sc.CreateUser(smartcarsim.VehicleSpec{Make: "TESLA", Model: "Canary", Year: 2025})
	if err := e.sc.SetConsentUser(scUser.ID); err != nil {
		t.Fatal(err)
	}
	s := e.signIn(applesim.NewSubject(), "canary-install", "phone")
	q, callback := e.consent(s.access, "")
	cb, err := url.Parse(callback)
	if err != nil {
		t.Fatal(err)
	}
	code, state, link := cb.Query().Get("code"), cb.Query().Get("state"), q.Get("link")
	r := e.do("POST", "/v1/vehicles/connect/complete", map[string]any{"link": link}, s.access)
	e.expect(r, http.StatusOK, "")
	// The link again (used), and a link and a state that never were.
	e.expect(e.do("POST", "/v1/vehicles/connect/complete", map[string]any{"link": link}, s.access), http.StatusNotFound, "CONNECT_LINK_INVALID")
	e.expect(e.do("POST", "/v1/vehicles/connect/complete", map[string]any{"link": "CANARY-LINK"}, s.access), http.StatusNotFound, "CONNECT_LINK_INVALID")
	e.hop(e.servers.HTTPURL() + "/v1/smartcar/callback?code=CANARY-CONNECT-CODE&state=CANARY-STATE")
	vehicles := e.vehicles(s.access)
	id := vehicles[0]["id"].(string)
	e.expect(e.lock(s.access, id, "lock"), http.StatusOK, "")

	body := []byte(`{"eventId":"canary-1","eventType":"VEHICLE_STATE","data":{"vehicle":{"id":"` + scUser.VehicleIDs[0] + `"}}}`)
	good := smartcarsim.Sign(e.sc.ManagementToken(), body)
	forged := smartcarsim.Sign("CANARY-GUESSED-TOKEN", body)
	for _, sig := range []string{good, forged} {
		req, _ := http.NewRequest(http.MethodPost, e.webhookURL(), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("SC-Signature", sig)
		e.exchange(req, "")
	}

	secrets := append([]string{code, state, link, "CANARY-LINK", "CANARY-CONNECT-CODE", "CANARY-STATE", good, forged,
		e.sc.ManagementToken(), s.access, s.refresh}, e.sc.IssuedTokens()...)
	logs := e.logs.String()
	if !strings.Contains(logs, `"route":"/v1/smartcar/callback"`) || !strings.Contains(logs, `"route":"/v1/webhooks/smartcar"`) {
		t.Fatal("the scan saw no callback or webhook logs; it would pass vacuously")
	}
	e.noSecretIn(secrets)
}
