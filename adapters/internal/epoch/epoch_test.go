package epoch_test

import (
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/internal/epoch"
)

func TestParse(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"1796637600":     at,
		"1796637600000":  at,
		"1796637600123":  at.Add(123 * time.Millisecond),
		"1796637600.9":   at,
		"31536000":       time.Unix(31536000, 0).UTC(), // 1971
		"32503680000000": time.UnixMilli(32503680000000).UTC(),
	} {
		if got, ok := epoch.Parse(in); !ok || !got.Equal(want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "0", "1000", "29999999", "33000000000001", "NaN", "1e400"} {
		if got, ok := epoch.Parse(in); ok {
			t.Errorf("Parse(%q) = %v; want refused", in, got)
		}
	}
}
