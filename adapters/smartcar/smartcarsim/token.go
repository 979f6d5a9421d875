package smartcarsim

import (
	"crypto/subtle"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// grant is one user's consent to the application for some vehicles and scopes.
type grant struct {
	userID, clientID string
	scopes           map[string]bool // permissions, without the required: prefix
	vehicles         []string
	revoked          bool
}

// covers reports whether the grant reaches vehicleID.
func (g *grant) covers(vehicleID string) bool { return slices.Contains(g.vehicles, vehicleID) }

// authCode is a single-use Connect code for a consent not yet redeemed.
type authCode struct {
	grant       *grant
	redirectURI string
	expires     time.Time
	used        bool
}

// accessToken is a bearer token of a grant.
type accessToken struct {
	grant   *grant
	expires time.Time
}

// refreshToken is a grant's refresh token; once used it dies RefreshGrace later.
type refreshToken struct {
	grant   *grant
	expires time.Time
	usedAt  time.Time
}

// tokenResponse is the token endpoint's success body (reference §1.3).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

// handleToken serves POST /oauth/token: Basic client authentication, a form body, and the
// authorization_code and refresh_token grants.
func (s *Simulator) handleToken(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(id), []byte(s.opts.ClientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) != 1 {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "Invalid client credentials.")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded.")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSimBody))
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Request body is too large.")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Malformed request body.")
		return
	}
	switch form.Get("grant_type") {
	case "authorization_code":
		s.exchangeCode(w, r, form)
	case "refresh_token":
		s.refreshGrant(w, r, form)
	case "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Missing grant_type.")
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant_type.")
	}
}

// exchangeCode redeems a Connect code once, within ten minutes, for the redirect URI it was
// issued to. Like Smartcar, the error description echoes the code.
func (s *Simulator) exchangeCode(w http.ResponseWriter, r *http.Request, form url.Values) {
	code := form.Get("code")
	now := s.now()
	s.mu.Lock()
	c, ok := s.codes[code]
	var status int
	var errCode, desc string
	switch {
	case code == "":
		status, errCode, desc = http.StatusBadRequest, "invalid_request", "Missing code."
	case !ok || c.used || !now.Before(c.expires) || c.grant.clientID != s.opts.ClientID:
		status, errCode, desc = http.StatusBadRequest, "invalid_request", "Invalid code: "+code+"."
	case form.Get("redirect_uri") != c.redirectURI:
		status, errCode, desc = http.StatusBadRequest, "invalid_grant", "Invalid redirect_uri."
	default:
		c.used = true
		s.grants = append(s.grants, c.grant)
	}
	s.mu.Unlock()
	if status != 0 {
		writeOAuthError(w, status, errCode, desc)
		return
	}
	s.codeExchanges.Add(1)
	s.issueTokens(w, r, c.grant)
}

// refreshGrant rotates a refresh token: the used one keeps working for RefreshGrace, then dies.
// Like Smartcar, the error description echoes the token.
func (s *Simulator) refreshGrant(w http.ResponseWriter, r *http.Request, form url.Values) {
	rt := form.Get("refresh_token")
	now := s.now()
	s.mu.Lock()
	t, ok := s.refresh[rt]
	valid := ok && !t.grant.revoked && t.grant.clientID == s.opts.ClientID && now.Before(t.expires) &&
		(t.usedAt.IsZero() || now.Before(t.usedAt.Add(s.opts.RefreshGrace)))
	if valid && t.usedAt.IsZero() {
		t.usedAt = now
	}
	s.mu.Unlock()
	switch {
	case rt == "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Missing refresh_token.")
	case !valid:
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "Invalid refresh_token: "+rt+".")
	default:
		s.refreshes.Add(1)
		s.issueTokens(w, r, t.grant)
	}
}

// issueTokens mints a new pair for g and answers with it, unless a fault strikes after the
// effect (the pair then exists but the client never sees it).
func (s *Simulator) issueTokens(w http.ResponseWriter, r *http.Request, g *grant) {
	now := s.now()
	access, refresh := newUUID(), newUUID()
	s.mu.Lock()
	for k, c := range s.codes { // keep a long-running dev server's memory flat
		if c.used || !now.Before(c.expires) {
			delete(s.codes, k)
		}
	}
	for k, t := range s.access {
		if !now.Before(t.expires) {
			delete(s.access, k)
		}
	}
	for k, t := range s.refresh {
		if !now.Before(t.expires) || (!t.usedAt.IsZero() && !now.Before(t.usedAt.Add(s.opts.RefreshGrace))) {
			delete(s.refresh, k)
		}
	}
	s.access[access] = &accessToken{grant: g, expires: now.Add(AccessTokenLifetime)}
	s.refresh[refresh] = &refreshToken{grant: g, expires: now.Add(RefreshTokenLifetime)}
	s.mu.Unlock()
	if s.afterEffect(w, r, EndpointToken) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: access, TokenType: "Bearer",
		ExpiresIn: int(AccessTokenLifetime / time.Second), RefreshToken: refresh})
}

// ExpireAccessTokens makes every access token issued so far invalid at once (401 AUTHENTICATION),
// as when Smartcar rotates credentials early; refresh tokens keep working. Tests use it to make
// every in-flight request need a refresh at the same moment without moving any clock.
func (s *Simulator) ExpireAccessTokens() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.access {
		if t.expires.After(now) {
			t.expires = now
		}
	}
}

// IssuedTokens lists every token value the simulator issued and still remembers (user access
// and refresh tokens, v3 application tokens), so a test can scan stores, logs and responses for
// them.
func (s *Simulator) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.access)+len(s.refresh)+len(s.apps))
	for k := range s.access {
		out = append(out, k)
	}
	for k := range s.refresh {
		out = append(out, k)
	}
	for k := range s.apps {
		out = append(out, k)
	}
	return out
}
