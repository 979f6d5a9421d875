package command

import (
	"context"
	"errors"
	"fmt"

	"github.com/betterkey/backend/domain"
)

// SubmitInput is an authenticated owner's request to lock or unlock a vehicle.
type SubmitInput struct {
	UserID    domain.UserID
	SessionID domain.SessionID
	VehicleID domain.VehicleID
	// Action is the app's "lock" or "unlock", checked here.
	Action string
	// IdempotencyKey is the optional Idempotency-Key header, checked here.
	IdempotencyKey string
}

// Submitted is an admitted command, or with Replayed the original command of a replayed key.
type Submitted struct {
	Command  domain.Command
	Replayed bool
}

// Submit admits a command and hands it to this process's worker. The checks run cheapest and
// most specific first, and none of them stores anything:
//   - a malformed action or idempotency key is a KindInvalid error;
//   - another user's vehicle, or none, is domain.ErrNotFound (never 403: ids are not confirmed);
//   - a key the user used before returns that command (Replayed) when it was for the same vehicle
//     and action, else domain.ErrIdempotencyKeyReused;
//   - a connection that needs re-auth or was revoked, or lacks control_security, is refused with
//     its stable code;
//   - a vehicle with a command in flight, or a user over the action's rate limit, is refused with
//     a *domain.CommandRefusal (retry hint and, in flight, the command to follow).
func (s *Service) Submit(ctx context.Context, in SubmitInput) (Submitted, error) {
	out, err := s.submit(ctx, in)
	if err != nil {
		action, _ := domain.ParseCommandAction(in.Action)
		s.d.Observer.Refused(action, codeOf(err))
		return Submitted{}, err
	}
	if !out.Replayed {
		s.d.Observer.Admitted(out.Command)
		s.enqueue(out.Command.ID)
	}
	return out, nil
}

func (s *Service) submit(ctx context.Context, in SubmitInput) (Submitted, error) {
	action, err := domain.ParseCommandAction(in.Action)
	if err != nil {
		return Submitted{}, err
	}
	if err := domain.CheckIdempotencyKey(in.IdempotencyKey); err != nil {
		return Submitted{}, err
	}
	if !domain.ValidID(string(in.VehicleID)) {
		return Submitted{}, domain.ErrNotFound
	}
	v, err := s.d.Connections.Vehicle(ctx, in.UserID, in.VehicleID)
	if err != nil {
		return Submitted{}, fmt.Errorf("get vehicle: %w", err)
	}
	req := domain.CommandRequest{UserID: in.UserID, VehicleID: v.ID, ConnectionID: v.ConnectionID, Action: action,
		IdempotencyKey: in.IdempotencyKey, SessionID: in.SessionID}
	if in.IdempotencyKey != "" {
		prior, err := s.d.Commands.ByIdempotencyKey(ctx, in.UserID, in.IdempotencyKey)
		switch {
		case err == nil:
			return replay(prior, req)
		case !errors.Is(err, domain.ErrNotFound):
			return Submitted{}, fmt.Errorf("find command by idempotency key: %w", err)
		}
	}
	if err := usable(v); err != nil {
		return Submitted{}, err
	}
	if req.Device, err = s.device(ctx, in.SessionID); err != nil {
		return Submitted{}, err
	}
	now := s.now()
	cmd := domain.NewCommand(req, now, s.cfg.TTL)
	// Until it is dispatched the command's lease is its deadline: a process that dies before
	// sending it blocks the vehicle no longer than the TTL, and any replica may send it meanwhile.
	a, err := s.d.Commands.Admit(ctx, cmd, cmd.Deadline, s.limitFor(action), now)
	if err != nil {
		if _, refused := errors.AsType[*domain.CommandRefusal](err); refused {
			return Submitted{}, err
		}
		return Submitted{}, fmt.Errorf("admit command: %w", err)
	}
	if a.Replayed {
		return replay(a.Command, req)
	}
	return Submitted{Command: a.Command}, nil
}

// replay returns prior for a replayed key, unless the key was used for something else.
func replay(prior domain.Command, req domain.CommandRequest) (Submitted, error) {
	if !prior.SameRequest(req) {
		return Submitted{}, domain.ErrIdempotencyKeyReused
	}
	return Submitted{Command: prior, Replayed: true}, nil
}

// usable refuses a vehicle whose link cannot carry a lock command.
func usable(v domain.VehicleView) error {
	if err := (domain.Connection{Status: v.ConnectionStatus}).Usable(); err != nil {
		return err
	}
	if v.Granted(domain.PermissionControlSecurity) {
		return nil
	}
	return domain.ErrNotCapable
}

// device is the kind of device the session runs on, for the history; a session that vanished
// meanwhile leaves it empty.
func (s *Service) device(ctx context.Context, id domain.SessionID) (domain.Device, error) {
	if id == "" || s.d.Sessions == nil {
		return "", nil
	}
	sess, err := s.d.Sessions.Get(ctx, id)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("get session: %w", err)
	}
	return sess.Device, nil
}

// codeOf is the stable code an error shows the app: internal failures show none of their own.
func codeOf(err error) string {
	e := domain.AsError(err)
	if e == nil || e.Kind == domain.KindInternal {
		return "INTERNAL"
	}
	return e.Code
}
