// Package connecturl builds Smartcar Connect's authorize URL, for the Smartcar adapter and for the
// in-memory fake that stands in for it, so the two cannot send different parameters.
package connecturl

import (
	"net/url"
	"strings"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// App is what the authorize URL says about the application.
type App struct {
	ConnectURL  string // Connect's base, without /oauth/authorize
	ClientID    string
	RedirectURI string
	Scopes      []string
	Mode        string // live, test or simulated
}

// Build returns the URL the owner opens, with the parameters Smartcar's SDKs send (reference
// §1.1): response_type=code, the app's client id, redirect URI, scopes and mode, the state, and
// what o asks for.
func Build(a App, state domain.Secret, o ports.ConnectOptions) string {
	q := url.Values{
		"response_type":   {"code"},
		"client_id":       {a.ClientID},
		"redirect_uri":    {a.RedirectURI},
		"scope":           {strings.Join(a.Scopes, " ")},
		"state":           {state.Reveal()},
		"mode":            {a.Mode},
		"approval_prompt": {"auto"},
	}
	if o.ForceApproval {
		q.Set("approval_prompt", "force")
	}
	if o.Make != "" {
		q.Set("make", strings.ToUpper(o.Make))
	}
	if o.SingleSelect {
		q.Set("single_select", "true")
	}
	return a.ConnectURL + "/oauth/authorize?" + q.Encode()
}
