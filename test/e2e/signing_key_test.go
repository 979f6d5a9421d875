package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/sessiontoken"
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
