package applesim

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DevSubject is the Apple user id the simulator uses when none is named, so repeated sign-ins in
// the README walkthrough land on the same account. It has the shape of real subjects.
const DevSubject = "001337.5f2c0a9e6b7d4c1f8a3e2b1d0c9f8e7a.0420"

// DefaultLifetime is the identity-token lifetime observed in native tokens since 2022 (24 h), which
// is why replay protection must come from the nonce and not from exp.
const DefaultLifetime = 24 * time.Hour

// NewSubject returns a fresh Apple-style subject ("000123.<32 hex>.0456"), for tests that need
// distinct users.
func NewSubject() string {
	return randomString("0123456789", 6) + "." + randomString("0123456789abcdef", 32) + "." + randomString("0123456789", 4)
}

// MintOptions describes one identity token. Zero values give a realistic native iOS token.
type MintOptions struct {
	// Subject is the Apple user id (default DevSubject).
	Subject string
	// Audience is the client id, the app bundle id for native tokens (default
	// Options.DefaultAudience).
	Audience string
	// Nonce is the nonce claim exactly as it should appear: the app puts lowercase hex SHA-256 of
	// the server's raw nonce there (see NonceClaim). Empty omits the claim.
	Nonce string
	// Email is the email claim; empty omits email, email_verified and is_private_email.
	Email string
	// EmailVerified is the email_verified value, a string ("true") or a bool, because Apple
	// sends both; nil means "true" when Email is set.
	EmailVerified any
	// IsPrivateEmail is the is_private_email value (string or bool); nil omits it.
	IsPrivateEmail any
	// IssuedAt defaults to the simulator's clock.
	IssuedAt time.Time
	// Lifetime is exp − iat (default DefaultLifetime; Apple used 600 s in 2020).
	Lifetime time.Duration
	// KID picks the signing key (default the current key). A kid the simulator does not hold is
	// written into the header while the current key signs, which is how tests make tokens that
	// name an unknown key.
	KID string
	// Issuer defaults to Issuer.
	Issuer string
	// AuthorizationCode, when set, adds c_hash for that code as native tokens carry it.
	AuthorizationCode string
	// ExtraClaims are set last and override the above; a nil value removes the claim, so tests
	// can drop sub or exp.
	ExtraClaims map[string]any
}

// NonceClaim is what the iOS app puts in the request's nonce for a raw server nonce: lowercase
// hex SHA-256, which Apple echoes unchanged in the token.
func NonceClaim(raw string) string {
	h := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(h[:])
}

// codeHash is c_hash: base64url of the left half of SHA-256 of the authorization code.
func codeHash(code string) string {
	h := sha256.Sum256([]byte(code))
	return base64.RawURLEncoding.EncodeToString(h[:len(h)/2])
}

// Mint signs an identity token as Apple would for a native sign-in.
func (s *Simulator) Mint(o MintOptions) (string, error) {
	if o.Subject == "" {
		o.Subject = DevSubject
	}
	if o.Audience == "" {
		o.Audience = s.opts.DefaultAudience
	}
	if o.Audience == "" {
		return "", errors.New("mint identity token: no audience")
	}
	if o.IssuedAt.IsZero() {
		o.IssuedAt = s.now()
	}
	if o.Lifetime == 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.Issuer == "" {
		o.Issuer = Issuer
	}
	iat := o.IssuedAt.Unix()
	claims := jwt.MapClaims{
		"iss":              o.Issuer,
		"aud":              o.Audience,
		"exp":              o.IssuedAt.Add(o.Lifetime).Unix(),
		"iat":              iat,
		"sub":              o.Subject,
		"auth_time":        iat,
		"nonce_supported":  true,
		"real_user_status": 2,
	}
	if o.Nonce != "" {
		claims["nonce"] = o.Nonce
	}
	if o.AuthorizationCode != "" {
		claims["c_hash"] = codeHash(o.AuthorizationCode)
	}
	if o.Email != "" {
		claims["email"] = o.Email
		claims["email_verified"] = o.EmailVerified
		if o.EmailVerified == nil {
			claims["email_verified"] = "true"
		}
		if o.IsPrivateEmail != nil {
			claims["is_private_email"] = o.IsPrivateEmail
		}
	}
	for k, v := range o.ExtraClaims {
		if v == nil {
			delete(claims, k)
			continue
		}
		claims[k] = v
	}
	return s.sign(claims, o.KID)
}

// sign produces a compact JWS with Apple's header shape {"kid","alg":"RS256"}.
func (s *Simulator) sign(claims jwt.MapClaims, kid string) (string, error) {
	key := s.current()
	if kid != "" {
		if k, ok := s.key(kid); ok {
			key = k
		}
	} else {
		kid = key.kid
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	delete(tok.Header, "typ")
	tok.Header["kid"] = kid
	out, err := tok.SignedString(key.priv)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return out, nil
}

// maxSimBody bounds every request body the simulator reads.
const maxSimBody = 64 << 10

// identityTokenRequest is the body of POST /sim/identity-token.
type identityTokenRequest struct {
	Sub   string `json:"sub"`
	Aud   string `json:"aud"`
	Nonce string `json:"nonce"` // the RAW server nonce; the simulator hashes it like the app does
	Email string `json:"email"`
}

// handleIdentityToken serves POST /sim/identity-token, the development stand-in for the iOS
// sign-in sheet: it returns a signed identity token and a matching authorization code.
func (s *Simulator) handleIdentityToken(w http.ResponseWriter, r *http.Request) {
	var req identityTokenRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSimBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "body must be JSON {sub, aud, nonce, email}")
		return
	}
	if req.Sub == "" {
		req.Sub = DevSubject
	}
	if req.Aud == "" {
		req.Aud = s.opts.DefaultAudience
	}
	if req.Aud == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "aud is required")
		return
	}
	if req.Email == "" {
		req.Email = relayEmail(req.Sub)
	}
	code := s.IssueAuthorizationCode(req.Sub, req.Aud)
	o := MintOptions{
		Subject: req.Sub, Audience: req.Aud, Email: req.Email, AuthorizationCode: code,
		EmailVerified: "true",
	}
	if strings.HasSuffix(req.Email, "@privaterelay.appleid.com") {
		o.IsPrivateEmail = "true"
	}
	if req.Nonce != "" {
		o.Nonce = NonceClaim(req.Nonce)
	}
	tok, err := s.Mint(o)
	if err != nil {
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "could not sign the token")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"identity_token": tok, "authorization_code": code})
}

// relayEmail derives a stable Hide My Email address for a subject.
func relayEmail(sub string) string {
	h := sha256.Sum256([]byte(sub))
	return hex.EncodeToString(h[:5]) + "@privaterelay.appleid.com"
}
