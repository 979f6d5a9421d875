package vehiclelink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Errors of the Connect flow; each becomes the `code` of the redirect back to the app.
var (
	ErrConnectStateInvalid = &domain.Error{Kind: domain.KindInvalid, Code: "CONNECT_STATE_INVALID", Msg: "the connect link is unknown, expired or already used"}
	ErrConnectCodeMissing  = &domain.Error{Kind: domain.KindInvalid, Code: "CONNECT_CODE_MISSING", Msg: "the connect callback carried no code"}
	ErrConnectDenied       = &domain.Error{Kind: domain.KindFailedPrecondition, Code: "CONNECT_ACCESS_DENIED", Msg: "access to the vehicle was not granted"}
	ErrVehicleIncompatible = &domain.Error{Kind: domain.KindFailedPrecondition, Code: "VEHICLE_INCOMPATIBLE", Msg: "the vehicle is not compatible"}
	ErrNoVehicles          = &domain.Error{Kind: domain.KindFailedPrecondition, Code: "NO_VEHICLES", Msg: "no vehicles were found in the account"}
	ErrInvalidSubscription = &domain.Error{Kind: domain.KindFailedPrecondition, Code: "INVALID_SUBSCRIPTION", Msg: "the vehicle has no active connected-services subscription"}
	ErrConnectFailed       = &domain.Error{Kind: domain.KindUnavailable, Code: "CONNECT_FAILED", Msg: "connecting the vehicle failed, try again"}
	// ErrConnectLinkInvalid is deliberately one answer for a link that does not exist, expired,
	// was used, or belongs to another user, so a caller learns nothing about others' links.
	ErrConnectLinkInvalid = &domain.Error{Kind: domain.KindNotFound, Code: "CONNECT_LINK_INVALID", Msg: "the connect link is unknown, expired or already used"}
)

// connectErrors maps Smartcar Connect's documented `error` values to ours; anything else is a
// generic failure.
var connectErrors = map[string]*domain.Error{
	"access_denied":                         ErrConnectDenied,
	"user_cancelled":                        ErrConnectDenied,
	"user_manually_returned_to_application": ErrConnectDenied,
	"vehicle_incompatible":                  ErrVehicleIncompatible,
	"no_vehicles":                           ErrNoVehicles,
	"invalid_subscription":                  ErrInvalidSubscription,
}

// StartConnect creates a single-use, user-bound state that expires in 10 minutes and returns the
// Connect URL carrying it.
func (s *Service) StartConnect(ctx context.Context, user domain.UserID, opts ports.ConnectOptions) (string, time.Time, error) {
	state := domain.NewOpaqueToken()
	exp := s.now().Add(domain.ConnectStateTTL)
	if err := s.d.States.Put(ctx, domain.ConnectState{Hash: domain.HashToken(state.Reveal()), UserID: user, ExpiresAt: exp}); err != nil {
		return "", time.Time{}, fmt.Errorf("store connect state: %w", err)
	}
	return s.d.API.AuthorizeURL(state, opts), exp, nil
}

// CallbackInput is what Smartcar's redirect brings.
type CallbackInput struct {
	State            domain.Secret
	Code             domain.Secret
	Error            string
	ErrorDescription string
}

// Pending is what an accepted callback hands to the app: the single-use link token with which the
// user who started the flow confirms it, and when that chance ends.
type Pending struct {
	Link      domain.Secret
	ExpiresAt time.Time
}

// Linked is the result of a successful Connect.
type Linked struct {
	UserID       domain.UserID
	ConnectionID domain.ConnectionID
	Scopes       []string
	Vehicles     []domain.Vehicle
}

// Views returns the linked vehicles as the owner's vehicle list shows them, without reading the
// store again: a connection that was just linked is active with the scopes it was granted.
func (l Linked) Views() []domain.VehicleView {
	out := make([]domain.VehicleView, 0, len(l.Vehicles))
	for _, v := range l.Vehicles {
		out = append(out, domain.VehicleView{Vehicle: v, ConnectionStatus: domain.ConnectionActive, Scopes: l.Scopes})
	}
	return out
}

// Callback accepts Smartcar's redirect: it consumes the state (unknown, expired, used: refused)
// and, when a code came back, seals it for the state's user and keeps it as a pending link that
// expires in 5 minutes. It links nothing and calls nothing upstream: the callback is
// unauthenticated, and the browser that consented need not be the owner's (an attacker can send
// their own authorize URL to a victim), so only CompleteConnect, called with the session of the
// user who started the flow, turns the code into a connection.
func (s *Service) Callback(ctx context.Context, in CallbackInput) (Pending, error) {
	if in.State.Empty() || in.State.Len() > 256 {
		return Pending{}, ErrConnectStateInvalid
	}
	st, err := s.d.States.Consume(ctx, domain.HashToken(in.State.Reveal()), s.now())
	if err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return Pending{}, ErrConnectStateInvalid
		}
		return Pending{}, fmt.Errorf("consume connect state: %w", err)
	}
	if in.Error != "" {
		if e, ok := connectErrors[in.Error]; ok {
			return Pending{}, e
		}
		return Pending{}, ErrConnectFailed
	}
	if in.Code.Empty() || in.Code.Len() > 512 {
		return Pending{}, ErrConnectCodeMissing
	}
	token := domain.NewOpaqueToken()
	l := domain.PendingLink{Hash: domain.HashToken(token.Reveal()), UserID: st.UserID, ExpiresAt: s.now().Add(domain.PendingLinkTTL)}
	if l.Code, err = s.d.Cipher.Seal(ctx, l.CodeBinding(), in.Code); err != nil {
		return Pending{}, fmt.Errorf("seal connect code: %w", err)
	}
	if err := s.d.States.PutPendingLink(ctx, l); err != nil {
		return Pending{}, fmt.Errorf("store pending link: %w", err)
	}
	return Pending{Link: token, ExpiresAt: l.ExpiresAt}, nil
}

// CompleteConnect confirms a pending link for the signed-in user: it consumes the link (single
// use), exchanges its code, reads the Smartcar user and vehicles, and stores one connection with
// its sealed token set and its vehicles in one transaction. On any failure nothing is stored.
//
// A link that does not exist, expired, was used, or belongs to another user is
// ErrConnectLinkInvalid. The link is consumed before its owner is compared, so a link presented
// by the wrong user is burned: it cannot be retried by the right user afterwards, and whoever
// saw the link (the victim's browser, in the attack this step stops) never gets a second chance
// to race its owner. The owner then simply runs Connect again.
func (s *Service) CompleteConnect(ctx context.Context, user domain.UserID, link domain.Secret) (Linked, error) {
	if link.Empty() || link.Len() > 256 {
		return Linked{}, ErrConnectLinkInvalid
	}
	l, err := s.d.States.ConsumePendingLink(ctx, domain.HashToken(link.Reveal()), s.now())
	if err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return Linked{}, ErrConnectLinkInvalid
		}
		return Linked{}, fmt.Errorf("consume pending link: %w", err)
	}
	if l.UserID != user {
		return Linked{}, ErrConnectLinkInvalid
	}
	code, err := s.d.Cipher.Open(ctx, l.CodeBinding(), l.Code)
	if err != nil {
		return Linked{}, fmt.Errorf("open connect code: %w", err)
	}
	tokens, err := s.d.API.ExchangeCode(ctx, code)
	if err != nil {
		return Linked{}, fmt.Errorf("exchange connect code: %w", err)
	}
	return s.link(ctx, l.UserID, tokens)
}

// link reads what the grant covers and stores it.
func (s *Service) link(ctx context.Context, user domain.UserID, tokens domain.TokenSet) (Linked, error) {
	scUser, err := s.d.API.User(ctx, tokens.AccessToken)
	if err != nil {
		return Linked{}, fmt.Errorf("read smartcar user: %w", err)
	}
	ids, err := s.d.API.Vehicles(ctx, tokens.AccessToken)
	if err != nil {
		return Linked{}, fmt.Errorf("list smartcar vehicles: %w", err)
	}
	if len(ids) == 0 {
		return Linked{}, ErrNoVehicles
	}
	// What the owner granted, not what was requested: Connect lets the owner decline optional
	// scopes, and one grant's permissions are the same for each of its vehicles.
	granted, err := s.d.API.Permissions(ctx, tokens.AccessToken, ids[0])
	if err != nil {
		return Linked{}, fmt.Errorf("read granted permissions: %w", err)
	}
	scopes := make([]string, len(granted))
	for i, p := range granted {
		scopes[i] = string(p)
	}
	now := s.now()
	conn := domain.Connection{
		ID: domain.NewConnectionID(), UserID: user, SmartcarUserID: scUser, Status: domain.ConnectionActive,
		Scopes: scopes, CreatedAt: now, UpdatedAt: now, RefreshedAt: now,
	}
	if old, err := s.d.Connections.BySmartcarUser(ctx, user, scUser); err == nil {
		conn.ID, conn.CreatedAt = old.ID, old.CreatedAt
	} else if !errors.Is(err, domain.ErrNotFound) {
		return Linked{}, fmt.Errorf("find connection: %w", err)
	}
	vehicles := make([]domain.Vehicle, 0, len(ids))
	for _, id := range ids {
		a, err := s.d.API.Attributes(ctx, domain.VehicleGrant{SmartcarUserID: scUser, Access: tokens.AccessToken}, id)
		if err != nil {
			return Linked{}, fmt.Errorf("read vehicle attributes: %w", err)
		}
		vehicles = append(vehicles, domain.Vehicle{
			ID: domain.NewVehicleID(), UserID: user, ConnectionID: conn.ID, SmartcarID: id,
			Make: a.Make, Model: a.Model, Year: a.Year, CreatedAt: now,
		})
	}
	if err := s.seal(ctx, &conn, tokens); err != nil {
		return Linked{}, err
	}
	stored, err := s.d.Connections.SaveGrant(ctx, conn, vehicles)
	if err != nil {
		return Linked{}, fmt.Errorf("store connection: %w", err)
	}
	return Linked{UserID: user, ConnectionID: conn.ID, Scopes: conn.Scopes, Vehicles: stored}, nil
}

// SweepStates deletes Connect states and pending links that expired unused.
func (s *Service) SweepStates(ctx context.Context) (int, error) {
	n, err := s.d.States.DeleteExpired(ctx, s.now())
	if err != nil {
		return 0, fmt.Errorf("sweep connect states: %w", err)
	}
	return n, nil
}
