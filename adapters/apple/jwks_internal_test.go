package apple

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseJWKSKeepsOnlyUsableRSASigningKeys(t *testing.T) {
	k2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	entry := func(kid string, k *rsa.PrivateKey, edit func(*jwk)) jwk {
		j := jwk{
			Kty: "RSA", Kid: kid, Use: "sig", Alg: "RS256",
			N: base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
		}
		if edit != nil {
			edit(&j)
		}
		return j
	}
	set := []jwk{
		entry("good", k2048, nil),
		entry("no-use-no-alg", k2048, func(j *jwk) { j.Use, j.Alg = "", "" }),
		entry("good", k1024, nil), // duplicate kid: the first wins
		entry("small", k1024, nil),
		entry("enc", k2048, func(j *jwk) { j.Use = "enc" }),
		entry("hs", k2048, func(j *jwk) { j.Alg = "HS256" }),
		entry("ec", k2048, func(j *jwk) { j.Kty = "EC" }),
		entry("bad-n", k2048, func(j *jwk) { j.N = "!!" }),
		entry("even-e", k2048, func(j *jwk) { j.E = "Ag" }),
		entry("", k2048, nil),
	}
	body, err := json.Marshal(map[string][]jwk{"keys": set})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		t.Fatalf("parseJWKS: %v", err)
	}
	var kids []string
	for kid := range keys {
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	if diff := cmp.Diff(kids, []string{"good", "no-use-no-alg"}); diff != "" {
		t.Errorf("kids (-got +want):\n%s", diff)
	}
	if !keys["good"].Equal(&k2048.PublicKey) {
		t.Error("duplicate kid replaced the first key")
	}

	for _, bad := range []string{`{"keys":[]}`, `not json`, `{"keys":[{"kty":"RSA","kid":"x"}]}`} {
		if _, err := parseJWKS([]byte(bad)); err == nil {
			t.Errorf("parseJWKS(%q) succeeded, want error", bad)
		}
	}
}
