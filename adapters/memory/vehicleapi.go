package memory

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/betterkey/backend/adapters/internal/connecturl"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// VehicleAPIOptions configure the fake Smartcar; zero values are filled in.
type VehicleAPIOptions struct {
	ConnectURL, ClientID, RedirectURI, Mode string
	// Now is the fake's clock (default time.Now).
	Now func() time.Time
	// RefreshGrace is how long a used refresh token keeps working (default
	// domain.VehicleRefreshGrace).
	RefreshGrace time.Duration
	// ApplicationAuth makes the vehicle calls act as the application for the grant's Smartcar
	// user, as Smartcar v3 does, instead of checking the user access token (v2).
	ApplicationAuth bool
}

// VehicleCondition is a fake car's situation, as in the simulator.
type VehicleCondition string

// The conditions: asleep and unreachable cars refuse lock reads and commands, driving ones
// refuse commands.
const (
	VehicleParked      VehicleCondition = "PARKED"
	VehicleAsleep      VehicleCondition = "ASLEEP"
	VehicleUnreachable VehicleCondition = "UNREACHABLE"
	VehicleDriving     VehicleCondition = "DRIVING"
)

// VehicleCall names a port method for failure injection.
type VehicleCall string

// The calls failures can be injected into.
const (
	CallToken       VehicleCall = "token" // ExchangeCode and Refresh
	CallUser        VehicleCall = "user"
	CallVehicles    VehicleCall = "vehicles"
	CallAttributes  VehicleCall = "attributes"
	CallPermissions VehicleCall = "permissions"
	CallLockStatus  VehicleCall = "lock_status"
	CallSecurity    VehicleCall = "security"
	CallDisconnect  VehicleCall = "disconnect"
)

// VehicleAPI is an in-memory ports.VehicleAPI that behaves as Smartcar does through the real
// adapter: single-use codes, rotating refresh tokens with a grace, 2 h access tokens, scopes,
// the same error classes, plus counters and switches for tests. It is safe for concurrent use.
type VehicleAPI struct {
	opts VehicleAPIOptions

	mu            sync.Mutex
	vehicles      map[string]*fakeCar
	users         map[string][]string // Smartcar user id → vehicle ids
	grants        []*fakeGrant
	codes         map[string]*fakeCode
	access        map[string]fakeToken
	refresh       map[string]*fakeToken
	fails         map[VehicleCall][]int
	hang          chan struct{}
	codeExchanges int
	refreshes     int
}

type fakeCar struct {
	attrs     domain.VehicleAttributes
	locked    bool
	commands  int
	condition VehicleCondition
	limited   time.Time
}

type fakeGrant struct {
	userID   string
	scopes   map[domain.VehiclePermission]bool
	vehicles []string
	revoked  bool
}

type fakeCode struct {
	grant   *fakeGrant
	expires time.Time
	used    bool
}

type fakeToken struct {
	grant   *fakeGrant
	expires time.Time
	usedAt  time.Time
}

var _ ports.VehicleAPI = (*VehicleAPI)(nil)

// NewVehicleAPI returns a fake with no users.
func NewVehicleAPI(o VehicleAPIOptions) *VehicleAPI {
	if o.ConnectURL == "" {
		o.ConnectURL = "https://connect.smartcar.com"
	}
	if o.ClientID == "" {
		o.ClientID = "memory-client-id"
	}
	if o.RedirectURI == "" {
		o.RedirectURI = "https://betterkey.test/v1/smartcar/callback"
	}
	if o.Mode == "" {
		o.Mode = "test"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RefreshGrace <= 0 {
		o.RefreshGrace = domain.VehicleRefreshGrace
	}
	return &VehicleAPI{opts: o, vehicles: map[string]*fakeCar{}, users: map[string][]string{},
		codes: map[string]*fakeCode{}, access: map[string]fakeToken{}, refresh: map[string]*fakeToken{},
		fails: map[VehicleCall][]int{}}
}

// ClientID is the client id AuthorizeURL puts in Connect URLs, for tests that check them.
func (f *VehicleAPI) ClientID() string { return f.opts.ClientID }

// RedirectURI is the redirect URI AuthorizeURL puts in Connect URLs.
func (f *VehicleAPI) RedirectURI() string { return f.opts.RedirectURI }

// CreateVehicleUser adds a Smartcar user owning the vehicles (their IDs are assigned; cars start
// parked and locked) and returns the user id and the vehicle ids.
func (f *VehicleAPI) CreateVehicleUser(vehicles ...domain.VehicleAttributes) (string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	uid := fakeUUID()
	var ids []string
	for _, a := range vehicles {
		a.ID = fakeUUID()
		f.vehicles[a.ID] = &fakeCar{attrs: a, locked: true, condition: VehicleParked}
		ids = append(ids, a.ID)
	}
	f.users[uid] = ids
	return uid, slices.Clone(ids)
}

// Consent plays the owner going through Connect at authorizeURL as userID and returns the code
// Connect would redirect with. It checks what Connect checks.
func (f *VehicleAPI) Consent(authorizeURL, userID string) (domain.Secret, error) {
	u, err := url.Parse(authorizeURL)
	if err != nil || !strings.HasSuffix(u.Path, "/oauth/authorize") {
		return domain.Secret{}, errors.New("consent: not a connect url")
	}
	q := u.Query()
	if q.Get("client_id") != f.opts.ClientID || q.Get("redirect_uri") != f.opts.RedirectURI || q.Get("response_type") != "code" {
		return domain.Secret{}, errors.New("consent: client, redirect uri or response type not accepted")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	owned, ok := f.users[userID]
	if !ok {
		return domain.Secret{}, errors.New("consent: unknown user")
	}
	g := &fakeGrant{userID: userID, scopes: map[domain.VehiclePermission]bool{}}
	for _, sc := range strings.Fields(q.Get("scope")) {
		p, _ := domain.ParseScope(sc)
		g.scopes[p] = true
	}
	for _, id := range owned {
		if m := q.Get("make"); m == "" || strings.EqualFold(m, f.vehicles[id].attrs.Make) {
			g.vehicles = append(g.vehicles, id)
		}
	}
	if single, _ := strconv.ParseBool(q.Get("single_select")); single && len(g.vehicles) > 1 {
		g.vehicles = g.vehicles[:1]
	}
	if len(g.vehicles) == 0 {
		return domain.Secret{}, errors.New("consent: no_vehicles")
	}
	code := fakeUUID()
	f.codes[code] = &fakeCode{grant: g, expires: f.opts.Now().Add(domain.ConnectCodeLifetime)}
	return domain.NewSecret(code), nil
}

// SetCondition changes a car's situation.
func (f *VehicleAPI) SetCondition(vehicleID string, c VehicleCondition) {
	f.withCar(vehicleID, func(v *fakeCar) { v.condition = c })
}

// RateLimit makes the car answer RATE_LIMITED for d on the fake's clock.
func (f *VehicleAPI) RateLimit(vehicleID string, d time.Duration) {
	until := f.opts.Now().Add(d)
	f.withCar(vehicleID, func(v *fakeCar) { v.limited = until })
}

// FailNext makes the next call of c fail as an upstream answer with status would (500, 502,
// 503, 504, 429, 401, 403).
func (f *VehicleAPI) FailNext(c VehicleCall, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fails[c] = append(f.fails[c], status)
}

// HangNextCommand makes the next Security call reach the car and then never answer until its
// ctx ends; the channel closes when the car has executed it.
func (f *VehicleAPI) HangNextCommand() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang = make(chan struct{})
	return f.hang
}

// RevokeConsent kills every grant of the user, as revoking the app at Smartcar does.
func (f *VehicleAPI) RevokeConsent(userID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, g := range f.grants {
		if g.userID == userID {
			g.revoked = true
		}
	}
}

// Counts reports successful code exchanges and refreshes.
func (f *VehicleAPI) Counts() (codeExchanges, refreshes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.codeExchanges, f.refreshes
}

// Car reports a car's lock state and how many commands reached it.
func (f *VehicleAPI) Car(vehicleID string) (locked bool, commands int, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.vehicles[vehicleID]
	if !ok {
		return false, 0, false
	}
	return v.locked, v.commands, true
}

func (f *VehicleAPI) withCar(id string, fn func(*fakeCar)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.vehicles[id]; ok {
		fn(v)
	}
}

// AuthorizeURL implements ports.VehicleAPI with the adapter's parameters.
func (f *VehicleAPI) AuthorizeURL(state domain.Secret, o ports.ConnectOptions) string {
	return connecturl.Build(connecturl.App{ConnectURL: f.opts.ConnectURL, ClientID: f.opts.ClientID, RedirectURI: f.opts.RedirectURI,
		Scopes: domain.DefaultConnectScopes(), Mode: f.opts.Mode}, state, o)
}

func fakeUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

// Operation names, the same as the real adapter's, so errors read alike.
const (
	opExchange    = "exchange code"
	opRefresh     = "refresh token"
	opUser        = "get user"
	opVehicles    = "list vehicles"
	opAttributes  = "get vehicle attributes"
	opPermissions = "list permissions"
	opLockStatus  = "get lock status"
	opSecurity    = "send security command"
	opDisconnect  = "disconnect vehicle"
)

// upstream builds the error the real adapter returns for the same upstream answer.
func upstream(op string, status int, typ, code string, err *domain.Error, temporary bool) *domain.UpstreamError {
	return &domain.UpstreamError{Err: err, Op: op, Status: status, Type: typ, Code: code,
		RequestID: fakeUUID(), Transient: temporary}
}

// injected pops a failure queued for c and classifies it as the adapter classifies the
// simulator's answer with that status.
func (f *VehicleAPI) injected(c VehicleCall, op string, effectful bool) error {
	q := f.fails[c]
	if len(q) == 0 {
		return nil
	}
	status := q[0]
	f.fails[c] = q[1:]
	var e *domain.UpstreamError
	switch status {
	case 401:
		e = upstream(op, status, "AUTHENTICATION", "", domain.ErrReauthRequired, false)
	case 403:
		e = upstream(op, status, "PERMISSION", "", domain.ErrConsentRevoked, false)
	case 429:
		e = upstream(op, status, "RATE_LIMIT", "SMARTCAR_API", domain.ErrRateLimited, true)
	case 502:
		e = upstream(op, status, "UPSTREAM", "UNKNOWN_ISSUE", domain.ErrUpstreamUnavailable, true)
		e.PossiblyExecuted = effectful
	case 503, 504:
		e = upstream(op, status, "", "", domain.ErrUpstreamUnavailable, true)
		e.PossiblyExecuted = effectful && status == 504
	default:
		e = upstream(op, status, "SERVER", "INTERNAL", domain.ErrUpstreamUnavailable, true)
		e.PossiblyExecuted = effectful
	}
	if c == CallToken {
		e.Type, e.Code = "oauth", "server_error"
	}
	return e
}

// ExchangeCode implements ports.VehicleAPI.
func (f *VehicleAPI) ExchangeCode(ctx context.Context, code domain.Secret) (domain.TokenSet, error) {
	if code.Empty() {
		return domain.TokenSet{}, domain.Invalid("code", "must not be empty")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected(CallToken, opExchange, true); err != nil {
		return domain.TokenSet{}, err
	}
	c, ok := f.codes[code.Reveal()]
	if !ok || c.used || !f.opts.Now().Before(c.expires) {
		return domain.TokenSet{}, upstream(opExchange, 400, "oauth", "invalid_request", domain.ErrConnectCodeInvalid, false)
	}
	c.used = true
	f.grants = append(f.grants, c.grant)
	f.codeExchanges++
	return f.mint(c.grant), nil
}

// Refresh implements ports.VehicleAPI.
func (f *VehicleAPI) Refresh(ctx context.Context, refreshToken domain.Secret) (domain.TokenSet, error) {
	if refreshToken.Empty() {
		return domain.TokenSet{}, domain.Invalid("refresh token", "must not be empty")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected(CallToken, opRefresh, true); err != nil {
		return domain.TokenSet{}, err
	}
	now := f.opts.Now()
	t, ok := f.refresh[refreshToken.Reveal()]
	if !ok || t.grant.revoked || !now.Before(t.expires) || (!t.usedAt.IsZero() && !now.Before(t.usedAt.Add(f.opts.RefreshGrace))) {
		return domain.TokenSet{}, upstream(opRefresh, 400, "oauth", "invalid_grant", domain.ErrReauthRequired, false)
	}
	if t.usedAt.IsZero() {
		t.usedAt = now
	}
	f.refreshes++
	return f.mint(t.grant), nil
}

// mint issues a token pair for g; f.mu is held.
func (f *VehicleAPI) mint(g *fakeGrant) domain.TokenSet {
	now := f.opts.Now()
	ts := domain.TokenSet{AccessToken: domain.NewSecret(fakeUUID()), RefreshToken: domain.NewSecret(fakeUUID()),
		AccessExpiresAt: now.Add(domain.VehicleAccessTokenLifetime), RefreshExpiresAt: now.Add(domain.VehicleRefreshTokenLifetime)}
	f.access[ts.AccessToken.Reveal()] = fakeToken{grant: g, expires: ts.AccessExpiresAt}
	f.refresh[ts.RefreshToken.Reveal()] = &fakeToken{grant: g, expires: ts.RefreshExpiresAt}
	return ts
}

// begin checks the injected failure and the bearer token of an API call; f.mu is held.
func (f *VehicleAPI) begin(c VehicleCall, op string, access domain.Secret, effectful bool) (*fakeGrant, error) {
	if access.Empty() {
		return nil, domain.Invalid("access token", "must not be empty")
	}
	if err := f.injected(c, op, effectful); err != nil {
		return nil, err
	}
	t, ok := f.access[access.Reveal()]
	if !ok || t.grant.revoked || !f.opts.Now().Before(t.expires) {
		return nil, upstream(op, 401, "AUTHENTICATION", "", domain.ErrReauthRequired, false)
	}
	return t.grant, nil
}

// UserTokens implements ports.VehicleAPI.
func (f *VehicleAPI) UserTokens() bool { return !f.opts.ApplicationAuth }

// beginVehicle checks a vehicle call's credentials, as the user's access token (v2) or as the
// application acting for the Smartcar user (v3), whose newest live grant covering the vehicle
// applies; f.mu is held.
func (f *VehicleAPI) beginVehicle(c VehicleCall, op string, gr domain.VehicleGrant, vehicleID string, effectful bool) (*fakeGrant, error) {
	if !f.opts.ApplicationAuth {
		return f.begin(c, op, gr.Access, effectful)
	}
	if gr.SmartcarUserID == "" {
		return nil, domain.Invalid("smartcar user id", "must not be empty")
	}
	if err := f.injected(c, op, effectful); err != nil {
		return nil, err
	}
	for _, g := range slices.Backward(f.grants) {
		if g.userID == gr.SmartcarUserID && !g.revoked && slices.Contains(g.vehicles, vehicleID) {
			return g, nil
		}
	}
	return nil, upstream(op, 403, "PERMISSION", "", domain.ErrConsentRevoked, false)
}

// car resolves a vehicle for g as the simulator does: permission, then rate limit, then the
// car's condition (reads refuse asleep and unreachable, commands also driving); f.mu is held.
func (f *VehicleAPI) car(op string, g *fakeGrant, id string, perm domain.VehiclePermission, condition bool, command bool) (*fakeCar, error) {
	v, ok := f.vehicles[id]
	if !ok || !slices.Contains(g.vehicles, id) || (perm != "" && !g.scopes[perm]) {
		return nil, upstream(op, 403, "PERMISSION", "", domain.ErrConsentRevoked, false)
	}
	if now := f.opts.Now(); now.Before(v.limited) {
		e := upstream(op, 429, "RATE_LIMIT", "VEHICLE", domain.ErrRateLimited, true)
		e.RetryAfter = v.limited.Sub(now).Round(time.Second)
		return nil, e
	}
	if !condition {
		return v, nil
	}
	switch {
	case v.condition == VehicleAsleep:
		return nil, upstream(op, 409, "VEHICLE_STATE", "ASLEEP", domain.ErrVehicleAsleep, true)
	case v.condition == VehicleUnreachable:
		return nil, upstream(op, 409, "VEHICLE_STATE", "UNREACHABLE", domain.ErrVehicleUnreachable, true)
	case v.condition == VehicleDriving && command:
		return nil, upstream(op, 409, "VEHICLE_STATE", "IN_MOTION", domain.ErrVehicleInMotion, true)
	}
	return v, nil
}

// User implements ports.VehicleAPI.
func (f *VehicleAPI) User(ctx context.Context, access domain.Secret) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, err := f.begin(CallUser, opUser, access, false)
	if err != nil {
		return "", err
	}
	return g.userID, nil
}

// Vehicles implements ports.VehicleAPI.
func (f *VehicleAPI) Vehicles(ctx context.Context, access domain.Secret) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, err := f.begin(CallVehicles, opVehicles, access, false)
	if err != nil {
		return nil, err
	}
	return slices.Clone(g.vehicles), nil
}

// Attributes implements ports.VehicleAPI.
func (f *VehicleAPI) Attributes(ctx context.Context, grant domain.VehicleGrant, vehicleID string) (domain.VehicleAttributes, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, err := f.beginVehicle(CallAttributes, opAttributes, grant, vehicleID, false)
	if err != nil {
		return domain.VehicleAttributes{}, err
	}
	v, err := f.car(opAttributes, g, vehicleID, domain.PermissionReadVehicleInfo, false, false)
	if err != nil {
		return domain.VehicleAttributes{}, err
	}
	return v.attrs, nil
}

// Permissions implements ports.VehicleAPI.
func (f *VehicleAPI) Permissions(ctx context.Context, access domain.Secret, vehicleID string) ([]domain.VehiclePermission, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, err := f.begin(CallPermissions, opPermissions, access, false)
	if err != nil {
		return nil, err
	}
	if _, err := f.car(opPermissions, g, vehicleID, "", false, false); err != nil {
		return nil, err
	}
	out := make([]domain.VehiclePermission, 0, len(g.scopes))
	for p := range g.scopes {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}

// LockStatus implements ports.VehicleAPI.
func (f *VehicleAPI) LockStatus(ctx context.Context, grant domain.VehicleGrant, vehicleID string) (domain.LockStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, err := f.beginVehicle(CallLockStatus, opLockStatus, grant, vehicleID, false)
	if err != nil {
		return domain.LockStatus{}, err
	}
	v, err := f.car(opLockStatus, g, vehicleID, domain.PermissionReadSecurity, true, false)
	if err != nil {
		return domain.LockStatus{}, err
	}
	locked, now := v.locked, f.opts.Now()
	return domain.LockStatus{Locked: &locked, ObservedAt: now, FetchedAt: now}, nil
}

// Security implements ports.VehicleAPI.
func (f *VehicleAPI) Security(ctx context.Context, grant domain.VehicleGrant, vehicleID string, action domain.SecurityAction) (string, error) {
	if !action.Valid() {
		return "", domain.Invalid("action", "must be LOCK or UNLOCK")
	}
	f.mu.Lock()
	g, err := f.beginVehicle(CallSecurity, opSecurity, grant, vehicleID, true)
	var v *fakeCar
	if err == nil {
		v, err = f.car(opSecurity, g, vehicleID, domain.PermissionControlSecurity, true, true)
	}
	if err != nil {
		f.mu.Unlock()
		return "", err
	}
	v.locked = action == domain.SecurityLock
	v.commands++
	hang := f.hang
	f.hang = nil
	f.mu.Unlock()
	if hang != nil {
		close(hang)
		<-ctx.Done()
		return "", &domain.UpstreamError{Err: domain.ErrUpstreamTimeout, Op: opSecurity, Transient: true,
			PossiblyExecuted: true, Cause: ctx.Err()}
	}
	return fakeUUID(), nil
}

// Disconnect implements ports.VehicleAPI.
func (f *VehicleAPI) Disconnect(ctx context.Context, grant domain.VehicleGrant, vehicleID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, err := f.beginVehicle(CallDisconnect, opDisconnect, grant, vehicleID, true)
	if err != nil {
		return err
	}
	if _, err := f.car(opDisconnect, g, vehicleID, "", false, false); err != nil {
		return err
	}
	for _, o := range f.grants {
		if o.userID == g.userID {
			o.vehicles = slices.DeleteFunc(o.vehicles, func(id string) bool { return id == vehicleID })
		}
	}
	return nil
}
