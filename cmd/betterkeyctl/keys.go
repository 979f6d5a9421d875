package main

import (
	"context"
	"fmt"
	"math"
	"strconv"

	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
	"github.com/betterkey/backend/gen/betterkey/admin/v1/adminv1connect"
)

type keysRewrap struct {
	Batch int64 `help:"Secrets per batch, 1-1000 (0: the server's default of 250); the server checks the range."`
}

func (c keysRewrap) command() (cliCommand, error) {
	n := int32(-1) // what does not fit is out of range, for the server to refuse
	if c.Batch >= 0 && c.Batch <= math.MaxInt32 {
		n = int32(c.Batch)
	}
	return cliCommand{run: rewrapSecrets(n), long: true}, nil
}

type keysRetire struct {
	MinVersion int64 `arg:"" help:"The lowest key version to keep (1, 2, ...)."`
}

func (c keysRetire) command() (cliCommand, error) {
	if c.MinVersion < 1 || c.MinVersion > math.MaxInt32 {
		return cliCommand{}, fmt.Errorf("%w: keys retire: min-version must be a key version (1, 2, ...)", errUsage)
	}
	return cliCommand{run: retireKeys(int32(c.MinVersion))}, nil
}

func keyReport(ctx context.Context, c adminv1connect.AdminServiceClient, out printer) error {
	res, err := c.GetKeyReport(ctx, &adminv1.GetKeyReportRequest{})
	if err != nil {
		return err
	}
	if out.json {
		return out.message(res)
	}
	return out.report(res.GetReport())
}

func rotateKey(ctx context.Context, c adminv1connect.AdminServiceClient, out printer) error {
	res, err := c.RotateKey(ctx, &adminv1.RotateKeyRequest{})
	if err != nil {
		return err
	}
	if out.json {
		return out.message(res)
	}
	return out.line(fmt.Sprintf("rotated: new seals use key version %d; run `keys rewrap` to move stored secrets to it", res.GetLatestVersion()))
}

func retireKeys(minVersion int32) commandFunc {
	return func(ctx context.Context, c adminv1connect.AdminServiceClient, out printer) error {
		res, err := c.RetireKeyVersions(ctx, &adminv1.RetireKeyVersionsRequest{MinVersion: minVersion})
		if err != nil {
			return err
		}
		if out.json {
			return out.message(res)
		}
		if err := out.line(fmt.Sprintf("retired key versions below %d", minVersion)); err != nil {
			return err
		}
		return out.report(res.GetReport())
	}
}

// rewrapSecrets prints each message of the stream as it arrives: a line per batch, then the
// totals and the key report. With -o json each message is printed as one JSON document.
func rewrapSecrets(batch int32) commandFunc {
	return func(ctx context.Context, c adminv1connect.AdminServiceClient, out printer) error {
		stream, err := c.RewrapSecrets(ctx, &adminv1.RewrapSecretsRequest{BatchSize: batch})
		if err != nil {
			return err
		}
		defer func() { _ = stream.Close() }()
		for stream.Receive() {
			if err := out.rewrapEvent(stream.Msg()); err != nil {
				return err
			}
		}
		return stream.Err()
	}
}

// rewrapEvent prints one message of the rewrap stream.
func (p printer) rewrapEvent(m *adminv1.RewrapSecretsResponse) error {
	if p.json {
		return p.message(m)
	}
	if pr := m.GetProgress(); pr != nil {
		return p.line("batch " + strconv.Itoa(int(pr.GetBatches())) + ": " + progressText(pr))
	}
	s := m.GetSummary()
	if err := p.line("rewrap finished: " + progressText(s.GetTotals())); err != nil {
		return err
	}
	if n := s.GetTotals().GetRemaining(); n > 0 {
		if err := p.line(fmt.Sprintf("%d secret(s) are still below v%d: retiring older versions would lose them", n, s.GetTotals().GetTargetVersion())); err != nil {
			return err
		}
	}
	return p.report(s.GetReport())
}

// progressText is the one-line account of a rewrap job.
func progressText(p *adminv1.RewrapProgress) string {
	return fmt.Sprintf("target v%d, done %d, failed %d, skipped %d, remaining %d",
		p.GetTargetVersion(), p.GetDone(), p.GetFailed(), p.GetSkipped(), p.GetRemaining())
}

// report prints the key versions as a table, oldest first.
func (p printer) report(r *adminv1.KeyReport) error {
	if err := p.line(fmt.Sprintf("latest version %d, minimum decryption version %d", r.GetLatestVersion(), r.GetMinDecryptionVersion())); err != nil {
		return err
	}
	rows := [][]string{{"VERSION", "STATE", "SECRETS"}}
	for _, v := range r.GetVersions() {
		state := "active"
		switch {
		case v.GetRetired():
			state = "retired"
		case v.GetVersion() == r.GetLatestVersion():
			state = "latest"
		}
		rows = append(rows, []string{strconv.Itoa(int(v.GetVersion())), state, strconv.FormatInt(v.GetSecrets(), 10)})
	}
	return p.table(rows)
}
