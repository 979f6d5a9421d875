package applesim

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"
)

// Apple's token endpoint behaviour (reference §2–3).
const (
	authCodeTTL       = 5 * time.Minute
	accessTokenExpiry = 3600
	descCodeExpired   = "The code has expired or has been revoked."
	descCodeUsed      = "The code has already been used."
	descTokenRevoked  = "The token has expired or has been revoked."
)

// authCode is a single-use authorization code bound to a user and a client. Native codes carry no
// redirect_uri, so a request naming one is refused.
type authCode struct {
	sub, clientID string
	expires       time.Time
	used          bool
}

// grant is one user's authorization of one client: a refresh token and its access tokens.
type grant struct {
	sub, clientID string
	revoked       bool
}

// IssueAuthorizationCode creates the single-use, five-minute code the iOS sheet would hand the
// app for sub signing in to clientID.
func (s *Simulator) IssueAuthorizationCode(sub, clientID string) string {
	code := "c" + randomString("0123456789abcdef", 32) + ".0." + randomString("abcdefghijklmnopqrstuvwxyz", 4) + "." + randomString(kidAlphabet, 22)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.codes { // keep a long-running dev server's memory flat
		if c.used || !now.Before(c.expires) {
			delete(s.codes, k)
		}
	}
	s.codes[code] = &authCode{sub: sub, clientID: clientID, expires: now.Add(authCodeTTL)}
	return code
}

// HasActiveGrant reports whether sub has an unrevoked refresh token for clientID, so tests can
// assert that account deletion revoked at Apple.
func (s *Simulator) HasActiveGrant(sub, clientID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.grants {
		if g.sub == sub && g.clientID == clientID && !g.revoked {
			return true
		}
	}
	return false
}

// RefreshTokens returns every refresh token the simulator has issued, revoked ones included, so
// tests can scan logs, responses and database dumps for them.
func (s *Simulator) RefreshTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.grants))
	for rt := range s.grants {
		out = append(out, rt)
	}
	return out
}

// tokenResponse is Apple's TokenResponse.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
}

// handleToken serves POST /auth/token.
func (s *Simulator) handleToken(w http.ResponseWriter, r *http.Request) {
	s.tokenRequests.Add(1)
	form, clientID, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	switch form.Get("grant_type") {
	case "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
	case "authorization_code":
		s.exchangeCode(w, form, clientID)
	case "refresh_token":
		s.refresh(w, form, clientID)
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

// exchangeCode redeems an authorization code once.
func (s *Simulator) exchangeCode(w http.ResponseWriter, form url.Values, clientID string) {
	code := form.Get("code")
	if code == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "code is required")
		return
	}
	s.mu.Lock()
	c, ok := s.codes[code]
	var desc string
	switch {
	case !ok || !s.now().Before(c.expires):
		desc = descCodeExpired
	case c.used:
		desc = descCodeUsed
	case c.clientID != clientID || form.Get("redirect_uri") != "":
		desc = descCodeExpired
	default:
		c.used = true
	}
	s.mu.Unlock()
	if desc != "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", desc)
		return
	}
	refresh := "r" + randomString("0123456789abcdef", 32) + ".0." + randomString(kidAlphabet, 22)
	g := &grant{sub: c.sub, clientID: clientID}
	s.mu.Lock()
	s.grants[refresh] = g
	s.mu.Unlock()
	s.issueTokens(w, g, refresh, true)
}

// refresh validates a refresh token and returns a new access token, without a new refresh token.
func (s *Simulator) refresh(w http.ResponseWriter, form url.Values, clientID string) {
	rt := form.Get("refresh_token")
	if rt == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "refresh_token is required")
		return
	}
	s.mu.Lock()
	g, ok := s.grants[rt]
	valid := ok && !g.revoked && g.clientID == clientID
	s.mu.Unlock()
	if !valid {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", descTokenRevoked)
		return
	}
	s.issueTokens(w, g, "", !s.opts.RefreshWithoutIDToken)
}

// issueTokens answers a successful grant with a new access token and, optionally, an id_token.
func (s *Simulator) issueTokens(w http.ResponseWriter, g *grant, refresh string, withIDToken bool) {
	access := "a" + randomString("0123456789abcdef", 32) + ".0." + randomString(kidAlphabet, 22)
	s.mu.Lock()
	s.access[access] = g
	s.mu.Unlock()
	resp := tokenResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: accessTokenExpiry, RefreshToken: refresh}
	if withIDToken {
		h := sha256.Sum256([]byte(access))
		tok, err := s.Mint(MintOptions{
			Subject: g.sub, Audience: g.clientID, Email: relayEmail(g.sub), IsPrivateEmail: "true",
			ExtraClaims: map[string]any{"at_hash": base64.RawURLEncoding.EncodeToString(h[:len(h)/2])},
		})
		if err != nil {
			writeOAuthError(w, http.StatusInternalServerError, "server_error", "")
			return
		}
		resp.IDToken = tok
	}
	writeJSON(w, http.StatusOK, resp)
}

// handleRevoke serves POST /auth/revoke: 200 with no body whether or not the token was live.
func (s *Simulator) handleRevoke(w http.ResponseWriter, r *http.Request) {
	s.revokeRequests.Add(1)
	form, clientID, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	token := form.Get("token")
	if token == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	s.mu.Lock()
	g, found := s.grants[token]
	if !found {
		g, found = s.access[token]
	}
	mismatch := found && g.clientID != clientID
	if found && !mismatch && !g.revoked {
		g.revoked = true
		s.revocations.Add(1)
	}
	s.mu.Unlock()
	if mismatch {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "")
		return
	}
	w.WriteHeader(http.StatusOK)
}

// authenticate applies what both endpoints share: the injected fault, a form body, no duplicate
// parameters and a valid client_secret for client_id. It writes the error response itself.
func (s *Simulator) authenticate(w http.ResponseWriter, r *http.Request) (url.Values, string, bool) {
	if s.currentFailure() == FailTokenServerError {
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "")
		return nil, "", false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "invalid content type")
		return nil, "", false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSimBody))
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "body too large")
		return nil, "", false
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client", "")
		return nil, "", false
	}
	for _, v := range form {
		if len(v) > 1 {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "duplicate parameter")
			return nil, "", false
		}
	}
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	if clientID == "" || secret == "" || s.checkClientSecret(secret, clientID) != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client", "")
		return nil, "", false
	}
	return form, clientID, true
}

// writeOAuthError writes Apple's ErrorResponse with the headers Apple sends.
func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	body := map[string]string{"error": code}
	if desc != "" {
		body["error_description"] = desc
	}
	writeJSON(w, status, body)
}

// writeJSON writes v with Apple's no-store headers.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
