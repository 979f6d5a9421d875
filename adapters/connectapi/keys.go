package connectapi

import (
	"context"
	"fmt"
	"math"

	"connectrpc.com/connect"

	"github.com/betterkey/backend/app/keys"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
)

// GetKeyReport implements adminv1connect.AdminServiceHandler.
func (s *AdminServer) GetKeyReport(ctx context.Context, _ *adminv1.GetKeyReportRequest) (*adminv1.GetKeyReportResponse, error) {
	r, err := s.keys.Report(ctx)
	if err != nil {
		return nil, err
	}
	return &adminv1.GetKeyReportResponse{Report: keyReportMessage(r)}, nil
}

// RotateKey implements adminv1connect.AdminServiceHandler.
func (s *AdminServer) RotateKey(ctx context.Context, _ *adminv1.RotateKeyRequest) (*adminv1.RotateKeyResponse, error) {
	v, err := s.keys.Rotate(ctx)
	if err != nil {
		return nil, err
	}
	return &adminv1.RotateKeyResponse{LatestVersion: int32Of(v)}, nil
}

// RetireKeyVersions implements adminv1connect.AdminServiceHandler; the response carries the
// report after the retirement, so the operator sees the key as it now is.
func (s *AdminServer) RetireKeyVersions(ctx context.Context, req *adminv1.RetireKeyVersionsRequest) (*adminv1.RetireKeyVersionsResponse, error) {
	if err := s.keys.Retire(ctx, int(req.GetMinVersion())); err != nil {
		return nil, err
	}
	r, err := s.keys.Report(ctx)
	if err != nil {
		return nil, err
	}
	return &adminv1.RetireKeyVersionsResponse{Report: keyReportMessage(r)}, nil
}

// RewrapSecrets implements adminv1connect.AdminServiceHandler: it runs the rewrap job for as long
// as the client listens, sending the progress after each batch and a summary with the key report
// at the end. A client that goes away cancels the job, which the next call resumes. The stream's
// write deadline is pushed out before every message, so a job longer than the server's write
// timeout still runs to its end.
func (s *AdminServer) RewrapSecrets(ctx context.Context, req *adminv1.RewrapSecretsRequest, stream *connect.ServerStream[adminv1.RewrapSecretsResponse]) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	extendStream(ctx)
	defer extendStream(ctx) // room for the trailers, whatever the job took
	var sendErr error
	send := func(m *adminv1.RewrapSecretsResponse) error {
		extendStream(ctx)
		if err := stream.Send(m); err != nil {
			return fmt.Errorf("send rewrap progress: %w", err)
		}
		return nil
	}
	totals, err := s.keys.Rewrap(ctx, int(req.GetBatchSize()), func(p keys.Progress) {
		if sendErr != nil {
			return
		}
		sendErr = send(&adminv1.RewrapSecretsResponse{Event: &adminv1.RewrapSecretsResponse_Progress{Progress: progressMessage(p)}})
		if sendErr != nil {
			cancel() // nobody listens: stop the job, the next call resumes it
		}
	})
	switch {
	case sendErr != nil:
		return sendErr
	case err != nil:
		return err
	}
	r, err := s.keys.Report(ctx)
	if err != nil {
		return err
	}
	return send(&adminv1.RewrapSecretsResponse{Event: &adminv1.RewrapSecretsResponse_Summary{Summary: &adminv1.RewrapSummary{
		Totals: progressMessage(totals), Report: keyReportMessage(r),
	}}})
}

// keyReportMessage copies a key report.
func keyReportMessage(r keys.Report) *adminv1.KeyReport {
	m := &adminv1.KeyReport{LatestVersion: int32Of(r.Latest), MinDecryptionVersion: int32Of(r.MinDecryption)}
	for _, v := range r.Versions {
		m.Versions = append(m.Versions, &adminv1.KeyVersionUsage{
			Version: int32Of(v.Version), Secrets: int64(v.Secrets), Retired: v.Retired,
		})
	}
	return m
}

// progressMessage copies a rewrap job's progress.
func progressMessage(p keys.Progress) *adminv1.RewrapProgress {
	return &adminv1.RewrapProgress{
		TargetVersion: int32Of(p.TargetVersion), Batches: int32Of(p.Batches),
		Done: int64(p.Done), Failed: int64(p.Failed), Skipped: int64(p.Skipped), Remaining: int64(p.Remaining),
	}
}

// int32Of saturates instead of wrapping; versions and batch counts stay far below the limit.
func int32Of(n int) int32 { return int32(min(max(n, math.MinInt32), math.MaxInt32)) }
