package applesim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"time"
)

// kidAlphabet and kidLen mimic Apple's key ids, e.g. "lVHdOx8ltR".
const (
	kidAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	kidLen      = 10
)

// newSigningKey generates an RSA-2048 key with a fresh Apple-style kid.
func newSigningKey() (signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return signingKey{}, fmt.Errorf("generate rsa key: %w", err)
	}
	return signingKey{kid: randomString(kidAlphabet, kidLen), priv: priv}, nil
}

// randomString draws n characters from alphabet with the CSPRNG. The modulo bias is irrelevant for
// simulated identifiers.
func randomString(alphabet string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails since Go 1.24
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// jwkJSON is one published key, in Apple's member order.
type jwkJSON struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// handleKeys serves GET /auth/keys, honouring the injected fault.
func (s *Simulator) handleKeys(w http.ResponseWriter, r *http.Request) {
	s.jwksFetches.Add(1)
	switch s.currentFailure() {
	case FailJWKSServerError:
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	case FailJWKSHang:
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		return
	case FailJWKSSlow:
		t := time.NewTimer(s.opts.SlowDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-s.done:
		}
	case FailJWKSMalformed:
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		_, _ = w.Write([]byte(`{"keys":`))
		return
	case FailJWKSEmpty:
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		_, _ = w.Write([]byte(`{"keys":[]}`))
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_ = json.NewEncoder(w).Encode(s.jwks())
}

// jwks renders the current key set.
func (s *Simulator) jwks() map[string][]jwkJSON {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]jwkJSON, 0, len(s.keys))
	for _, k := range s.keys {
		pub := k.priv.PublicKey
		out = append(out, jwkJSON{
			Kty: "RSA",
			Kid: k.kid,
			Use: "sig",
			Alg: "RS256",
			N:   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			E:   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		})
	}
	return map[string][]jwkJSON{"keys": out}
}

// AddKey publishes a new key, which becomes the current signing key, and returns its kid.
func (s *Simulator) AddKey() (string, error) {
	k, err := newSigningKey()
	if err != nil {
		return "", fmt.Errorf("add key: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, k)
	return k.kid, nil
}

// RemoveKey withdraws a key; tokens it signed stop verifying once the backend refetches. The
// last key cannot be removed, because Apple always publishes at least one.
func (s *Simulator) RemoveKey(kid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range s.keys {
		if k.kid == kid {
			if len(s.keys) == 1 {
				return fmt.Errorf("remove key: the last key cannot be removed")
			}
			s.keys = append(s.keys[:i:i], s.keys[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("remove key: %w", errUnknownKey)
}

// RotateKeys does what Apple did in 2020 and 2022: publish a new key (now the signing key) and
// drop the oldest. It returns the new kid.
func (s *Simulator) RotateKeys() (string, error) {
	k, err := newSigningKey()
	if err != nil {
		return "", fmt.Errorf("rotate keys: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys[1:len(s.keys):len(s.keys)], k)
	return k.kid, nil
}

// KIDs lists the published key ids, oldest first.
func (s *Simulator) KIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, k.kid)
	}
	return out
}

// CurrentKID is the kid that signs tokens by default (the newest key).
func (s *Simulator) CurrentKID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[len(s.keys)-1].kid
}

// PublicKeyPEM returns a published key as PKIX PEM. Negative tests use it, for instance to sign
// an HS256 token with Apple's public key as the HMAC secret (the key-confusion attack).
func (s *Simulator) PublicKeyPEM(kid string) ([]byte, error) {
	k, ok := s.key(kid)
	if !ok {
		return nil, fmt.Errorf("encode public key: %w", errUnknownKey)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// key finds a published key by kid.
func (s *Simulator) key(kid string) (signingKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if k.kid == kid {
			return k, true
		}
	}
	return signingKey{}, false
}

// current returns the default signing key.
func (s *Simulator) current() signingKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[len(s.keys)-1]
}
