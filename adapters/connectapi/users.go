package connectapi

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/betterkey/backend/app/account"
	"github.com/betterkey/backend/app/identity"
	"github.com/betterkey/backend/app/keys"
	"github.com/betterkey/backend/app/sessionkeys"
	"github.com/betterkey/backend/app/vehiclelink"
	"github.com/betterkey/backend/domain"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
	"github.com/betterkey/backend/gen/betterkey/admin/v1/adminv1connect"
)

// maxAppleField bounds the Apple issuer and subject we look up; real ones are well under 100 B.
const maxAppleField = 255

// AdminServer implements the generated AdminService handler over the identity and key-management
// use cases. It holds no state of its own, so one value serves every request concurrently.
// Handlers validate input, call the use case and return its error unchanged: the error
// interceptor maps and logs it once.
type AdminServer struct {
	identity    *identity.Service
	keys        *keys.Service
	vehicles    *vehiclelink.Service
	account     *account.Service
	sessionKeys *sessionkeys.Service
	now         func() time.Time
}

// The build fails if the server lags behind the proto: no embedded Unimplemented handler, so a
// new RPC cannot silently answer Unimplemented.
var _ adminv1connect.AdminServiceHandler = (*AdminServer)(nil)

// NewAdminServer returns the AdminService implementation over the identity and key-management
// use cases; WithGrants adds the vehicle-link and account use cases the grant revocations need.
func NewAdminServer(id *identity.Service, k *keys.Service) *AdminServer {
	return &AdminServer{identity: id, keys: k, now: time.Now}
}

// WithGrants returns s with the use cases behind RevokeUserVehicleGrants and
// RevokeUserAppleGrants; without them those calls fail with FAILED_PRECONDITION.
func (s *AdminServer) WithGrants(v *vehiclelink.Service, a *account.Service) *AdminServer {
	c := *s
	c.vehicles, c.account = v, a
	return &c
}

// GetUser implements adminv1connect.AdminServiceHandler. Support finds an account by our id, or
// by Apple subject when all a user can give is what Apple shows them.
func (s *AdminServer) GetUser(ctx context.Context, req *adminv1.GetUserRequest) (*adminv1.GetUserResponse, error) {
	var (
		u   domain.User
		err error
	)
	switch lookup := req.GetLookup().(type) {
	case *adminv1.GetUserRequest_UserId:
		id, verr := parseUserID("user_id", lookup.UserId)
		if verr != nil {
			return nil, verr
		}
		u, err = s.identity.User(ctx, id)
	case *adminv1.GetUserRequest_Apple:
		issuer, subject := lookup.Apple.GetIssuer(), lookup.Apple.GetSubject()
		if verr := validateApple(issuer, subject); verr != nil {
			return nil, verr
		}
		u, err = s.identity.UserByApple(ctx, issuer, subject)
	default:
		return nil, domain.Invalid("lookup", "one of user_id or apple is required")
	}
	if err != nil {
		return nil, err
	}
	return &adminv1.GetUserResponse{User: userMessage(u)}, nil
}

// parseUserID checks an id from the request before it reaches a store.
func parseUserID(field, s string) (domain.UserID, error) {
	if !domain.ValidID(s) {
		return "", domain.Invalid(field, "must be a lowercase UUID")
	}
	return domain.UserID(s), nil
}

// parseSessionID checks a session id from the request before it reaches a store.
func parseSessionID(field, s string) (domain.SessionID, error) {
	if !domain.ValidID(s) {
		return "", domain.Invalid(field, "must be a lowercase UUID")
	}
	return domain.SessionID(s), nil
}

func validateApple(issuer, subject string) error {
	switch {
	case issuer == "" || len(issuer) > maxAppleField:
		return domain.Invalid("apple.issuer", "is required and at most 255 bytes")
	case subject == "" || len(subject) > maxAppleField:
		return domain.Invalid("apple.subject", "is required and at most 255 bytes")
	}
	return nil
}

// userMessage copies only what support needs; nothing else of the account leaves the server.
func userMessage(u domain.User) *adminv1.User {
	return &adminv1.User{
		Id:             string(u.ID),
		Apple:          &adminv1.AppleIdentity{Issuer: u.AppleIssuer, Subject: u.AppleSubject},
		Email:          u.Email,
		EmailVerified:  u.EmailVerified,
		IsPrivateEmail: u.IsPrivateEmail,
		CreatedAt:      timestamp(u.CreatedAt),
		UpdatedAt:      timestamp(u.UpdatedAt),
	}
}

// timestamp leaves an unset time unset instead of sending year 1.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
