package applesim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ClientSecretAudience is the aud every client_secret JWT must carry.
const ClientSecretAudience = "https://appleid.apple.com"

// MaxClientSecretLifetime is Apple's ceiling on exp − now for a client_secret (about six months).
const MaxClientSecretLifetime = 15777000 * time.Second

// ClientKey is a Sign in with Apple private key registered in a developer account, reduced to
// what the token endpoint checks: the team, the key id, the public half and the client ids
// (bundle ids, Services ids) the team may authenticate as.
type ClientKey struct {
	TeamID    string
	KeyID     string
	PublicKey *ecdsa.PublicKey
	ClientIDs []string
}

// RegisterClientKey makes the token and revoke endpoints accept client secrets signed with k.
func (s *Simulator) RegisterClientKey(k ClientKey) error {
	if k.TeamID == "" || k.KeyID == "" || k.PublicKey == nil || len(k.ClientIDs) == 0 {
		return errors.New("register client key: team id, key id, public key and client ids are required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k.ClientIDs = slices.Clone(k.ClientIDs)
	s.clients[k.KeyID] = k
	return nil
}

// GenerateClientKey creates and registers a P-256 key as the developer portal would, and returns
// it as the PKCS#8 PEM ".p8" file the backend is configured with.
func (s *Simulator) GenerateClientKey(teamID, keyID string, clientIDs ...string) ([]byte, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate client key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode client key: %w", err)
	}
	if err := s.RegisterClientKey(ClientKey{TeamID: teamID, KeyID: keyID, PublicKey: &priv.PublicKey, ClientIDs: clientIDs}); err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MintClientSecret signs a client_secret the way Apple documents it, for tests that call the
// simulator's token endpoint directly. p8 is the PEM from GenerateClientKey.
func MintClientSecret(p8 []byte, teamID, keyID, clientID string, issuedAt time.Time, lifetime time.Duration) (string, error) {
	priv, err := jwt.ParseECPrivateKeyFromPEM(p8)
	if err != nil {
		return "", fmt.Errorf("parse client key: %w", err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": teamID,
		"iat": issuedAt.Unix(),
		"exp": issuedAt.Add(lifetime).Unix(),
		"aud": ClientSecretAudience,
		"sub": clientID,
	})
	delete(tok.Header, "typ")
	tok.Header["kid"] = keyID
	out, err := tok.SignedString(priv)
	if err != nil {
		return "", fmt.Errorf("sign client secret: %w", err)
	}
	return out, nil
}

// checkClientSecret applies Apple's client_secret rules: ES256 with raw R||S (golang-jwt rejects
// DER), a registered kid, iss = that key's team, aud = Apple, sub = client_id and registered for
// the key, not expired, and not valid for more than MaxClientSecretLifetime from now.
func (s *Simulator) checkClientSecret(secret, clientID string) error {
	var key ClientKey
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	claims := jwt.MapClaims{}
	_, err := parser.ParseWithClaims(secret, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		s.mu.Lock()
		k, ok := s.clients[kid]
		s.mu.Unlock()
		if !ok {
			return nil, errors.New("unknown key id")
		}
		key = k
		return k.PublicKey, nil
	})
	if err != nil {
		return fmt.Errorf("check client secret: %w", err)
	}
	now := s.now()
	iss, _ := claims.GetIssuer()
	sub, _ := claims.GetSubject()
	aud, _ := claims.GetAudience()
	exp, _ := claims.GetExpirationTime()
	switch {
	case iss != key.TeamID:
		return errors.New("check client secret: iss is not the key's team")
	case !slices.Contains(aud, ClientSecretAudience):
		return errors.New("check client secret: wrong aud")
	case sub != clientID || !slices.Contains(key.ClientIDs, clientID):
		return errors.New("check client secret: sub does not match client_id")
	case exp == nil || !now.Before(exp.Time):
		return errors.New("check client secret: expired or no exp")
	case exp.Sub(now) > MaxClientSecretLifetime:
		return errors.New("check client secret: exp too far in the future")
	}
	return nil
}
