package main

import (
	"context"
	"fmt"
	"time"

	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
	"github.com/betterkey/backend/gen/betterkey/admin/v1/adminv1connect"
)

type signingKeyRotate struct {
	Overlap *time.Duration `help:"How long the replaced keys keep verifying after the new one signs (0s to 1h, whole seconds; unset: one access-token lifetime; 0s for a leaked key)."`
}

func (c signingKeyRotate) command() (cliCommand, error) {
	req := &adminv1.RotateSessionSigningKeyRequest{}
	if c.Overlap != nil {
		if *c.Overlap%time.Second != 0 {
			return cliCommand{}, fmt.Errorf("%w: signing-key rotate: --overlap is whole seconds", errUsage)
		}
		sec := int64(*c.Overlap / time.Second) // the server checks the range
		req.OverlapSeconds = &sec
	}
	return cliCommand{run: rotateSigningKey(req)}, nil
}

func rotateSigningKey(req *adminv1.RotateSessionSigningKeyRequest) commandFunc {
	return func(ctx context.Context, c adminv1connect.AdminServiceClient, out printer) error {
		res, err := c.RotateSessionSigningKey(ctx, req)
		if err != nil {
			return err
		}
		if out.json {
			return out.message(res)
		}
		if err := out.line("rotated: key " + res.GetKeyId() + " is published to every replica and signs from the time below"); err != nil {
			return err
		}
		return out.table(signingKeyRows(res.GetKeys()))
	}
}

func listSigningKeys(ctx context.Context, c adminv1connect.AdminServiceClient, out printer) error {
	res, err := c.ListSessionSigningKeys(ctx, &adminv1.ListSessionSigningKeysRequest{})
	if err != nil {
		return err
	}
	if out.json {
		return out.message(res)
	}
	if len(res.GetKeys()) == 0 {
		return out.line("no stored keys: the configured BETTERKEY_SESSION_SIGNING_KEY signs")
	}
	return out.table(signingKeyRows(res.GetKeys()))
}

func signingKeyRows(keys []*adminv1.SessionSigningKey) [][]string {
	rows := [][]string{{"KEY ID", "STATE", "SIGNS FROM", "VERIFIES UNTIL", "CREATED"}}
	for _, k := range keys {
		rows = append(rows, []string{k.GetKeyId(), k.GetState(), timeText(k.GetSignsFrom()), timeText(k.GetVerifiesUntil()), timeText(k.GetCreatedAt())})
	}
	return rows
}
