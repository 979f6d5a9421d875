package domain

import (
	"errors"
	"strings"
	"time"
)

// ConnectionID identifies one Smartcar grant (one Connect consent of one Smartcar user) of a
// BetterKey user.
type ConnectionID string

// VehicleID is BetterKey's id of a vehicle; the app never sees Smartcar's.
type VehicleID string

// NewConnectionID returns a fresh random connection id.
func NewConnectionID() ConnectionID { return ConnectionID(newUUID()) }

// NewVehicleID returns a fresh random vehicle id.
func NewVehicleID() VehicleID { return VehicleID(newUUID()) }

// PurposeSmartcarTokens is the binding purpose of a connection's sealed token set.
const PurposeSmartcarTokens = "smartcar.token_set"

// ConnectionStatus says whether a connection's tokens can be used.
type ConnectionStatus string

// The connection states the vehicle list shows.
const (
	// ConnectionActive tokens work (or can be refreshed).
	ConnectionActive ConnectionStatus = "active"
	// ConnectionNeedsReauth: the refresh token is dead or the maker login changed; the owner must
	// run Connect again.
	ConnectionNeedsReauth ConnectionStatus = "needs_reauth"
	// ConnectionRevoked: the owner (or Smartcar) withdrew consent; the owner may reconnect.
	ConnectionRevoked ConnectionStatus = "revoked"
)

// Connection is one Smartcar grant with its sealed token set. The expiry times are kept in clear
// beside the sealed set so that the refresher can find due connections without decrypting.
type Connection struct {
	ID               ConnectionID
	UserID           UserID
	SmartcarUserID   string
	Status           ConnectionStatus
	Scopes           []string
	Tokens           SealedSecret
	AccessExpiresAt  time.Time
	RefreshExpiresAt time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
	RefreshedAt      time.Time
}

// TokenBinding is the binding the connection's token set is sealed under.
func (c Connection) TokenBinding() SecretBinding {
	return SecretBinding{Purpose: PurposeSmartcarTokens, UserID: c.UserID, ConnectionID: string(c.ID)}
}

// Usable returns nil when the connection's tokens may be used, else the error to show.
func (c Connection) Usable() error {
	switch c.Status {
	case ConnectionNeedsReauth:
		return ErrReauthRequired
	case ConnectionRevoked:
		return ErrConsentRevoked
	}
	return nil
}

// Mark moves the connection to a status an upstream or an operator proved, at now, and reports
// whether it changed anything. Revoked is final: a withdrawn grant comes back only as a new one
// through Connect, so neither a later needs-reauth signal nor an operator's forced re-auth
// softens it; and a status is never marked active, only granted.
func (c *Connection) Mark(status ConnectionStatus, now time.Time) bool {
	if status == c.Status || c.Status == ConnectionRevoked || status == ConnectionActive {
		return false
	}
	c.Status, c.UpdatedAt = status, now
	return true
}

// MarkFor is Mark with the status an upstream refusal proves: ErrReauthRequired (a dead refresh
// token, a changed maker login) is needs_reauth, ErrConsentRevoked is revoked; any other error
// proves nothing and changes nothing.
func (c *Connection) MarkFor(err error, now time.Time) bool {
	switch {
	case errors.Is(err, ErrConsentRevoked):
		return c.Mark(ConnectionRevoked, now)
	case errors.Is(err, ErrReauthRequired):
		return c.Mark(ConnectionNeedsReauth, now)
	}
	return false
}

// MoreSevere returns the worse of two statuses a batch of signals proves: revoked over
// needs_reauth over nothing.
func MoreSevere(a, b ConnectionStatus) ConnectionStatus {
	if a == ConnectionRevoked || b == ConnectionRevoked {
		return ConnectionRevoked
	}
	if a == ConnectionNeedsReauth || b == ConnectionNeedsReauth {
		return ConnectionNeedsReauth
	}
	return ""
}

// Vehicle is a car a user linked through a connection.
type Vehicle struct {
	ID           VehicleID
	UserID       UserID
	ConnectionID ConnectionID
	SmartcarID   string
	Make         string
	Model        string
	Year         int
	CreatedAt    time.Time
}

// StatusSource says how a vehicle status was observed.
type StatusSource string

// The ways a status reaches us.
const (
	StatusLive    StatusSource = "live"    // read from the vehicle API on request
	StatusWebhook StatusSource = "webhook" // pushed by a signed Smartcar event
	StatusCommand StatusSource = "command" // inferred from a lock/unlock the vehicle accepted
)

// VehicleStatus is the last known lock state of a vehicle. ObservedAt is when the vehicle
// reported it, so a newer observation always wins over an older one arriving late.
type VehicleStatus struct {
	VehicleID  VehicleID
	Locked     *bool
	Doors      []Opening
	Windows    []Opening
	ObservedAt time.Time
	FetchedAt  time.Time
	Source     StatusSource
}

// Granted reports whether the owner granted p for the vehicle's connection; stored scopes may
// carry Connect's required: prefix.
func (v VehicleView) Granted(p VehiclePermission) bool {
	for _, sc := range v.Scopes {
		if got, _ := ParseScope(sc); got == p {
			return true
		}
	}
	return false
}

// Supersedes is the ordering rule of vehicle status: the newest observation wins, whatever order
// observations arrive in (webhooks are unordered and at least once), and an equal one changes
// nothing. Stores apply it as a compare-and-set, so concurrent saves of one car cannot lose the
// newest.
func (s VehicleStatus) Supersedes(prev *VehicleStatus) bool {
	return prev == nil || s.ObservedAt.After(prev.ObservedAt)
}

// VehicleView is a vehicle as the owner sees it: no token material, the link status, and the
// cached status when there is one.
type VehicleView struct {
	Vehicle
	ConnectionStatus ConnectionStatus
	Scopes           []string
	Status           *VehicleStatus
}

// ConnectStateTTL bounds how long a Connect flow may take (SPEC §4).
const ConnectStateTTL = 10 * time.Minute

// ConnectState is a pending Connect flow: known only by the hash of its random state value,
// bound to the user who started it, single use.
type ConnectState struct {
	Hash      TokenHash
	UserID    UserID
	ExpiresAt time.Time
}

// PendingLinkTTL bounds how long the owner's app has to confirm a Connect after the callback;
// it stays well inside the 10 minutes a Smartcar authorization code lives, so a confirmed link
// still has a code Smartcar accepts.
const PendingLinkTTL = 5 * time.Minute

// PurposeConnectCode is the binding purpose of a pending link's sealed authorization code.
const PurposeConnectCode = "smartcar.connect_code"

// PendingLink is a Connect flow whose callback came back with a code but which the owner's app
// has not confirmed yet: the callback is unauthenticated and may run in anyone's browser, so the
// code only becomes a connection when the user who started the flow presents the link token with
// their own session. Known only by the hash of its random link token, single use; the code is
// sealed for that user.
type PendingLink struct {
	Hash      TokenHash
	UserID    UserID
	Code      SealedSecret
	ExpiresAt time.Time
}

// CodeBinding is the binding a pending link's authorization code is sealed under.
func (p PendingLink) CodeBinding() SecretBinding {
	return SecretBinding{Purpose: PurposeConnectCode, UserID: p.UserID}
}

// ValidateGrant refuses what the schema could not store faithfully: ids that are not canonical
// UUIDs, a grant without a token set, and a vehicle or an id listed twice (the unique (connection,
// Smartcar vehicle) pair and the primary key would reject the whole grant).
func ValidateGrant(c Connection, vehicles []Vehicle) error {
	if !ValidID(string(c.ID)) {
		return Invalid("connection.id", "must be a canonical uuid")
	}
	if !ValidID(string(c.UserID)) {
		return Invalid("connection.user_id", "must be a canonical uuid")
	}
	if c.Tokens.IsZero() {
		return Invalid("connection.tokens", "must not be empty")
	}
	if err := c.Validate(); err != nil {
		return err
	}
	seen := make(map[string]bool, 2*len(vehicles))
	for _, v := range vehicles {
		switch {
		case !ValidID(string(v.ID)):
			return Invalid("vehicle.id", "must be a canonical uuid")
		case v.SmartcarID == "":
			return Invalid("vehicle.smartcar_id", "must not be empty")
		case seen["id:"+string(v.ID)] || seen["smartcar:"+v.SmartcarID]:
			return Invalid("vehicles", "must not list a vehicle or an id twice")
		}
		seen["id:"+string(v.ID)], seen["smartcar:"+v.SmartcarID] = true, true
	}
	return nil
}

// Validate checks what every save must keep true: a Smartcar user, a status the
// schema's check accepts, and scopes that survive being stored space-separated.
func (c Connection) Validate() error {
	if c.SmartcarUserID == "" {
		return Invalid("connection.smartcar_user_id", "must not be empty")
	}
	switch c.Status {
	case ConnectionActive, ConnectionNeedsReauth, ConnectionRevoked:
	default:
		return Invalid("connection.status", "must be active, needs_reauth or revoked")
	}
	for _, sc := range c.Scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\r\n,") {
			return Invalid("connection.scopes", "must be non-empty words")
		}
	}
	return nil
}
