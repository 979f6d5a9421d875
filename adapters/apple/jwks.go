package apple

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"time"
)

// Limits on what Apple's key endpoint may send us. Apple's real set is about 2 KiB with 3–4 keys.
const (
	maxJWKSBody    = 64 << 10
	maxJWKSKeys    = 32
	minRSAKeyBits  = 2048
	maxRSAKeyBits  = 8192
	maxRedirects   = 3
	jwksUserAgent  = "betterkey-backend"
	jwksAcceptType = "application/json"
)

// jwk is one entry of a JSON Web Key Set, reduced to the members an RSA signing key needs.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// fetchJWKS downloads and parses the key set. Errors name the failure, never the body.
func fetchJWKS(ctx context.Context, client *http.Client, url string) (map[string]*rsa.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("build jwks request: %w", err)
	}
	req.Header.Set("Accept", jwksAcceptType)
	req.Header.Set("User-Agent", jwksUserAgent)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJWKSBody))
		return nil, fmt.Errorf("fetch jwks: unexpected status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBody+1))
	if err != nil {
		return nil, fmt.Errorf("read jwks: %w", err)
	}
	if len(body) > maxJWKSBody {
		return nil, fmt.Errorf("read jwks: body exceeds %d bytes", maxJWKSBody)
	}
	return parseJWKS(body)
}

// parseJWKS keeps the RSA signing keys it can use and skips the rest, so one odd entry (a new key
// type Apple might add) does not take the whole set down. A set with no usable key is an error.
func parseJWKS(body []byte) (map[string]*rsa.PublicKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, errors.New("decode jwks: not a json key set")
	}
	if len(set.Keys) > maxJWKSKeys {
		return nil, fmt.Errorf("decode jwks: more than %d keys", maxJWKSKeys)
	}
	keys := make(map[string]*rsa.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if _, dup := keys[k.Kid]; dup || k.Kid == "" {
			continue
		}
		pub, ok := k.rsaKey()
		if !ok {
			continue
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("decode jwks: %w", errNoUsableKeys)
	}
	return keys, nil
}

// rsaKey converts the entry when it is an RSA key meant for RS256 signatures of sane size.
func (k jwk) rsaKey() (*rsa.PublicKey, bool) {
	if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "RS256") {
		return nil, false
	}
	nb, err := base64.RawURLEncoding.DecodeString(k.N)
	if err != nil || len(nb) == 0 {
		return nil, false
	}
	eb, err := base64.RawURLEncoding.DecodeString(k.E)
	if err != nil || len(eb) == 0 || len(eb) > 4 {
		return nil, false
	}
	n := new(big.Int).SetBytes(nb)
	if bits := n.BitLen(); bits < minRSAKeyBits || bits > maxRSAKeyBits {
		return nil, false
	}
	var e int64
	for _, b := range eb {
		e = e<<8 | int64(b)
	}
	if e < 3 || e%2 == 0 || e > 1<<31-1 {
		return nil, false
	}
	return &rsa.PublicKey{N: n, E: int(e)}, true
}

// newHTTPClient returns the client used for key fetches. A caller's client is copied, never
// modified; either way redirects may not leave the original host, so a compromised or
// misconfigured redirect cannot hand us someone else's keys.
func newHTTPClient(base *http.Client, timeout time.Duration) *http.Client {
	var c http.Client
	if base != nil {
		c = *base // its transport (tracing, tests' fakes); a base without a timeout still gets ours
	}
	if c.Timeout == 0 {
		c.Timeout = timeout
	}
	c.CheckRedirect = sameHostRedirect
	return &c
}

// sameHostRedirect follows a few redirects on the same scheme and host and refuses the rest.
func sameHostRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return errors.New("follow redirect: too many redirects")
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return errors.New("follow redirect: refusing to leave the original host")
	}
	return nil
}
