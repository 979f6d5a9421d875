package requestid_test

import (
	"strings"
	"testing"

	"github.com/betterkey/backend/adapters/requestid"
)

func TestAdopt(t *testing.T) {
	for _, ok := range []string{"abc-123_XYZ", strings.Repeat("a", 64)} {
		if got := requestid.Adopt(ok); got != ok {
			t.Errorf("Adopt(%q) = %q, want it kept", ok, got)
		}
	}
	for _, bad := range []string{"", strings.Repeat("a", 65), "a b", "id\nlevel=ERROR", `x"y`, "ü"} {
		got := requestid.Adopt(bad)
		if got == bad || len(got) != 32 {
			t.Errorf("Adopt(%q) = %q, want a fresh 32-hex id", bad, got)
		}
	}
	if a, b := requestid.Adopt(""), requestid.Adopt(""); a == b {
		t.Error("two fresh ids are equal")
	}
}
