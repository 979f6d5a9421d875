package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
	"github.com/betterkey/backend/gen/betterkey/admin/v1/adminv1connect"
)

func getUser(req *adminv1.GetUserRequest) commandFunc {
	return func(ctx context.Context, c adminv1connect.AdminServiceClient, out printer) error {
		res, err := c.GetUser(ctx, req)
		if err != nil {
			return err
		}
		if out.json {
			return out.message(res)
		}
		u := res.GetUser()
		return out.table([][]string{
			{"id", u.GetId()},
			{"apple_issuer", u.GetApple().GetIssuer()},
			{"apple_subject", u.GetApple().GetSubject()},
			{"email", u.GetEmail()},
			{"email_verified", fmt.Sprint(u.GetEmailVerified())},
			{"is_private_email", fmt.Sprint(u.GetIsPrivateEmail())},
			{"created_at", timeText(u.GetCreatedAt())},
			{"updated_at", timeText(u.GetUpdatedAt())},
		})
	}
}

func listSessions(user string) commandFunc {
	return func(ctx context.Context, c adminv1connect.AdminServiceClient, out printer) error {
		res, err := c.ListUserSessions(ctx, &adminv1.ListUserSessionsRequest{UserId: user})
		if err != nil {
			return err
		}
		if out.json {
			return out.message(res)
		}
		rows := [][]string{{"ID", "STATE", "DEVICE", "NAME", "INSTALL", "CREATED", "LAST USED", "IDLE EXPIRY", "ABSOLUTE EXPIRY", "REVOKED", "REASON"}}
		for _, s := range res.GetSessions() {
			rows = append(rows, []string{
				s.GetId(), enumText(s.GetState().String(), "SESSION_STATE_"), enumText(s.GetDevice().String(), "DEVICE_"),
				dash(s.GetDeviceName()), s.GetInstallId(), timeText(s.GetCreatedAt()), timeText(s.GetLastUsedAt()),
				timeText(s.GetIdleExpiresAt()), timeText(s.GetAbsoluteExpiresAt()), timeText(s.GetRevokedAt()), dash(s.GetRevokeReason()),
			})
		}
		return out.table(rows)
	}
}

func revokeAll(user string) commandFunc {
	return func(ctx context.Context, c adminv1connect.AdminServiceClient, out printer) error {
		res, err := c.RevokeUserSessions(ctx, &adminv1.RevokeUserSessionsRequest{UserId: user})
		if err != nil {
			return err
		}
		if out.json {
			return out.message(res)
		}
		return out.line(fmt.Sprintf("revoked %d session(s) of user %s", res.GetRevokedCount(), user))
	}
}

func revokeOne(user, session string) commandFunc {
	return func(ctx context.Context, c adminv1connect.AdminServiceClient, out printer) error {
		res, err := c.RevokeSession(ctx, &adminv1.RevokeSessionRequest{UserId: user, SessionId: session})
		if err != nil {
			return err
		}
		if out.json {
			return out.message(res)
		}
		return out.line("revoked session " + session)
	}
}

// revokeEveryone is the emergency stop; the server checks the confirmation phrase.
func revokeEveryone(confirm string) commandFunc {
	return func(ctx context.Context, c adminv1connect.AdminServiceClient, out printer) error {
		res, err := c.RevokeAllSessions(ctx, &adminv1.RevokeAllSessionsRequest{Confirm: confirm})
		if err != nil {
			return err
		}
		if out.json {
			return out.message(res)
		}
		return out.line(fmt.Sprintf("revoked %d session(s) of every account", res.GetRevokedCount()))
	}
}

func revokeSmartcar(user string) commandFunc {
	return func(ctx context.Context, c adminv1connect.AdminServiceClient, out printer) error {
		res, err := c.RevokeUserVehicleGrants(ctx, &adminv1.RevokeUserVehicleGrantsRequest{UserId: user})
		if err != nil {
			return err
		}
		if out.json {
			return out.message(res)
		}
		return out.line(fmt.Sprintf("user %s: %d vehicle(s) disconnected at Smartcar, %d connection(s) now need re-auth",
			user, res.GetVehiclesDisconnected(), res.GetConnectionsRevoked()))
	}
}

func revokeApple(user string) commandFunc {
	return func(ctx context.Context, c adminv1connect.AdminServiceClient, out printer) error {
		res, err := c.RevokeUserAppleGrants(ctx, &adminv1.RevokeUserAppleGrantsRequest{UserId: user})
		if err != nil {
			return err
		}
		if out.json {
			return out.message(res)
		}
		return out.line(fmt.Sprintf("user %s: %d Sign in with Apple authorization(s) revoked", user, res.GetRevokedCount()))
	}
}

// printer writes results as aligned text for people or as protojson for scripts.
type printer struct {
	w    io.Writer
	json bool
}

// message prints m as indented JSON with the proto field names and every field present, the
// stable form for scripts. protojson randomizes its whitespace on purpose, so the output is
// re-indented by encoding/json to be byte-stable.
func (p printer) message(m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return fmt.Errorf("indent json: %w", err)
	}
	return p.line(buf.String())
}

func (p printer) table(rows [][]string) error {
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		if _, err := fmt.Fprintln(tw, strings.Join(r, "\t")); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func (p printer) line(s string) error {
	if _, err := fmt.Fprintln(p.w, s); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// timeText prints a timestamp in UTC to the second, or "-" when unset.
func timeText(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

func enumText(s, prefix string) string { return strings.ToLower(strings.TrimPrefix(s, prefix)) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
