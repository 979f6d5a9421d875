package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/sessiontoken"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
)

// The session signing key rotates with an overlap, across replicas: a replica that signs with the
// new key still accepts the old key's tokens, and once the old key is gone its tokens are refused
// as invalid, while the refresh token (not signed, stored) still gets the app a new one.
func TestSigningKeyRotatesWithAnOverlap(t *testing.T) {
	old := startServer(t)
	next := sessiontoken.GenerateKey().Reveal()
	keys := func(sign, verify string) option {
		return func(v map[string]string) {
			v["BETTERKEY_SESSION_SIGNING_KEY"] = sign
			if verify != "" {
				v["BETTERKEY_SESSION_VERIFY_KEYS"] = verify
			}
		}
	}
	s := old.signIn(applesim.NewSubject(), "install-1", "phone")

	switched := startOn(t, old.infra, freeAddr(t), keys(next, old.signingKey))
	switched.signingKey = next
	switched.expect(switched.do("GET", "/v1/me", nil, s.access), http.StatusOK, "")
	fresh := switched.signIn(applesim.NewSubject(), "install-2", "phone")
	switched.expect(switched.do("GET", "/v1/me", nil, fresh.access), http.StatusOK, "")
	// Why the new key is published (as a verify key) before it signs: a replica without it refuses.
	old.expect(old.do("GET", "/v1/me", nil, fresh.access), http.StatusUnauthorized, "INVALID_ACCESS_TOKEN")

	done := startOn(t, old.infra, freeAddr(t), keys(next, ""))
	done.signingKey = next
	done.expect(done.do("GET", "/v1/me", nil, s.access), http.StatusUnauthorized, "INVALID_ACCESS_TOKEN")
	r := done.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": s.refresh}, "")
	done.expect(r, http.StatusOK, "")
	done.expect(done.do("GET", "/v1/me", nil, r.str("access_token")), http.StatusOK, "")
	for _, e := range []*env{old, switched, done} { // neither key is ever logged
		for _, key := range []string{old.signingKey, next} {
			if strings.Contains(e.logs.String(), key) {
				t.Error("a session signing key appears in a log line")
			}
		}
	}
}

// kidOf reads the key id of an access token without verifying it.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	tk, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tk.Header["kid"].(string)
	return kid
}

// The operator rotates the signing key over the admin API, on one replica of two: the new key is
// published to both before either signs with it, then signs on both; with an overlap of 0 (the
// emergency rotation of a leaked key) the old key's tokens are refused everywhere from then on,
// and the refresh token still gets the app a new access token. A replica started after the
// rotation loads the stored keys before it serves.
func TestOperatorRotatesTheSigningKey(t *testing.T) {
	fast := func(v map[string]string) { v["BETTERKEY_SESSION_KEY_RELOAD"] = "200ms" }
	a := startServer(t, fast)
	b := startOn(t, a.infra, freeAddr(t), fast)
	s := a.signIn(applesim.NewSubject(), "install-1", "phone")
	confKid := kidOf(t, s.access)

	keys, err := a.admin().ListSessionSigningKeys(t.Context(), &adminv1.ListSessionSigningKeysRequest{})
	if err != nil || len(keys.GetKeys()) != 0 {
		t.Fatalf("keys before any rotation = %v, %v; want none", keys, err)
	}
	bad := int64(3601)
	if _, err := a.admin().RotateSessionSigningKey(t.Context(), &adminv1.RotateSessionSigningKeyRequest{OverlapSeconds: &bad}); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("rotation with a 3601 s overlap = %v, want invalid_argument", err)
	}
	zero := int64(0)
	res, err := a.admin().RotateSessionSigningKey(t.Context(), &adminv1.RotateSessionSigningKeyRequest{OverlapSeconds: &zero})
	if err != nil {
		t.Fatal(err)
	}
	ks := res.GetKeys()
	if len(ks) != 2 || ks[0].GetKeyId() != confKid || ks[0].GetState() != "signing" || ks[1].GetKeyId() != res.GetKeyId() || ks[1].GetState() != "pending" {
		t.Fatalf("keys after the rotation = %v; want the configured key signing and the new one pending", ks)
	}
	signsFrom := ks[1].GetSignsFrom().AsTime()
	if !ks[0].GetVerifiesUntil().AsTime().Equal(signsFrom) {
		t.Fatalf("with overlap 0 the old key verifies until %v, want %v", ks[0].GetVerifiesUntil().AsTime(), signsFrom)
	}
	// Until then both replicas sign with the old key and accept it.
	for _, e := range []*env{a, b} {
		e.expect(e.do("GET", "/v1/me", nil, s.access), http.StatusOK, "")
	}
	time.Sleep(time.Until(signsFrom) + 100*time.Millisecond)

	fresh := b.signIn(applesim.NewSubject(), "install-2", "phone")
	if kidOf(t, fresh.access) != res.GetKeyId() {
		t.Fatalf("a token signed after SignsFrom has kid %s, want the new key %s", kidOf(t, fresh.access), res.GetKeyId())
	}
	c := startOn(t, a.infra, freeAddr(t), fast) // started after the rotation
	for _, e := range []*env{a, b, c} {
		e.expect(e.do("GET", "/v1/me", nil, fresh.access), http.StatusOK, "")
		e.expect(e.do("GET", "/v1/me", nil, s.access), http.StatusUnauthorized, "INVALID_ACCESS_TOKEN")
	}
	r := a.do("POST", "/v1/auth/refresh", map[string]string{"refresh_token": s.refresh}, "")
	a.expect(r, http.StatusOK, "")
	if kidOf(t, r.str("access_token")) != res.GetKeyId() {
		t.Fatal("the refreshed access token is not signed with the new key")
	}
	c.expect(c.do("GET", "/v1/me", nil, r.str("access_token")), http.StatusOK, "")

	keys, err = b.admin().ListSessionSigningKeys(t.Context(), &adminv1.ListSessionSigningKeysRequest{})
	if err != nil || len(keys.GetKeys()) != 2 || keys.GetKeys()[0].GetState() != "retired" || keys.GetKeys()[1].GetState() != "signing" {
		t.Fatalf("keys once the rotation is done = %v, %v", keys, err)
	}
	a.adminLogged(t, "/betterkey.admin.v1.AdminService/RotateSessionSigningKey")
	for _, e := range []*env{a, b, c} {
		if strings.Contains(e.logs.String(), a.signingKey) {
			t.Error("the configured signing key appears in a log line")
		}
	}
}
