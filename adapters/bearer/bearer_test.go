package bearer_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/betterkey/backend/adapters/bearer"
)

func TestToken(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	ok := map[string]string{
		"Bearer " + jwt:         jwt,
		"bearer " + jwt:         jwt,
		"BEARER " + jwt:         jwt,
		"bEaReR abc+/~-_.==":    "abc+/~-_.==",
		"Bearer " + "a" + "===": "a===",
	}
	for h, want := range ok {
		got, err := bearer.Token(http.Header{"Authorization": {h}})
		if err != nil || got != want {
			t.Errorf("Token(%q) = %q, %v; want %q", h, got, err, want)
		}
	}
	bad := []string{
		"", "Bearer", "Bearer ", "Bearer  " + jwt, "Bearer " + jwt + " ", " Bearer " + jwt, "Bearer\t" + jwt,
		"Basic dXNlcjpwYXNz", "Bearerx " + jwt, "Bearer " + jwt + " extra", "Bearer =abc", "Bearer ab=c",
		"Bearer a\x00b", "Bearer ä", "Bearer a,b", "Bearer a\"b", "Bearer " + strings.Repeat("a", bearer.MaxHeader),
	}
	for _, h := range bad {
		if _, err := bearer.Token(http.Header{"Authorization": {h}}); !errors.Is(err, bearer.ErrMalformed) {
			t.Errorf("Token(%q) = %v, want ErrMalformed", h, err)
		}
	}
	if _, err := bearer.Token(http.Header{}); !errors.Is(err, bearer.ErrMissing) {
		t.Errorf("no header: %v, want ErrMissing", err)
	}
	if _, err := bearer.Token(http.Header{"Authorization": {"Bearer a", "Bearer b"}}); !errors.Is(err, bearer.ErrMalformed) {
		t.Errorf("two headers: %v, want ErrMalformed", err)
	}
}
