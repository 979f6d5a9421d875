package apple_test

import (
	"context"
	"testing"

	"github.com/betterkey/backend/adapters/apple/applesim"
)

// BenchmarkVerify measures a sign-in's verification with a warm key cache: one RS256 signature
// check and the claim checks. The target is under 100 µs per token.
func BenchmarkVerify(b *testing.B) {
	e := newEnv(b, nil)
	tok := e.mint(b, applesim.MintOptions{Email: "x@privaterelay.appleid.com", IsPrivateEmail: "true"})
	ctx := context.Background()
	if _, err := e.v.Verify(ctx, tok); err != nil {
		b.Fatalf("warm-up Verify: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
