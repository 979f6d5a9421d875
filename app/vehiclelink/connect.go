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

// Linked is the result of a successful Connect.
type Linked struct {
	UserID       domain.UserID
	ConnectionID domain.ConnectionID
	Vehicles     []domain.Vehicle
}

// Callback completes a Connect flow: it consumes the state (unknown, expired, used: refused), and
// on success exchanges the code, reads the Smartcar user and vehicles, and stores one connection
// with its sealed token set and its vehicles in one transaction. On any failure nothing is stored.
func (s *Service) Callback(ctx context.Context, in CallbackInput) (Linked, error) {
	if in.State.Empty() || in.State.Len() > 256 {
		return Linked{}, ErrConnectStateInvalid
	}
	st, err := s.d.States.Consume(ctx, domain.HashToken(in.State.Reveal()), s.now())
	if err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return Linked{}, ErrConnectStateInvalid
		}
		return Linked{}, fmt.Errorf("consume connect state: %w", err)
	}
	if in.Error != "" {
		if e, ok := connectErrors[in.Error]; ok {
			return Linked{}, e
		}
		return Linked{}, ErrConnectFailed
	}
	if in.Code.Empty() || in.Code.Len() > 512 {
		return Linked{}, ErrConnectCodeMissing
	}
	tokens, err := s.d.API.ExchangeCode(ctx, in.Code)
	if err != nil {
		return Linked{}, fmt.Errorf("exchange connect code: %w", err)
	}
	return s.link(ctx, st.UserID, tokens)
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
	now := s.now()
	conn := domain.Connection{
		ID: domain.NewConnectionID(), UserID: user, SmartcarUserID: scUser, Status: domain.ConnectionActive,
		Scopes: domain.DefaultConnectScopes(), CreatedAt: now, UpdatedAt: now, RefreshedAt: now,
	}
	if old, err := s.d.Connections.BySmartcarUser(ctx, user, scUser); err == nil {
		conn.ID, conn.CreatedAt = old.ID, old.CreatedAt
	} else if !errors.Is(err, domain.ErrNotFound) {
		return Linked{}, fmt.Errorf("find connection: %w", err)
	}
	vehicles := make([]domain.Vehicle, 0, len(ids))
	for _, id := range ids {
		a, err := s.d.API.Attributes(ctx, tokens.AccessToken, id)
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
	return Linked{UserID: user, ConnectionID: conn.ID, Vehicles: stored}, nil
}

// SweepStates deletes Connect states that expired unused.
func (s *Service) SweepStates(ctx context.Context) (int, error) {
	n, err := s.d.States.DeleteExpired(ctx, s.now())
	if err != nil {
		return 0, fmt.Errorf("sweep connect states: %w", err)
	}
	return n, nil
}
