package connectapi

import (
	"context"
	"log/slog"
	"time"

	"connectrpc.com/connect"

	"github.com/betterkey/backend/adapters/requestid"
)

// errorInterceptor is the single place where a handler error becomes a Connect error and where
// every admin call, allowed or refused, leaves one audit line. It is the outermost interceptor so
// that it also sees calls the auth interceptor refused.
type errorInterceptor struct {
	log    *slog.Logger
	failed func(procedure, code string)
}

func newErrorInterceptor(log *slog.Logger, failed func(procedure, code string)) *errorInterceptor {
	if failed == nil {
		failed = func(string, string) {}
	}
	return &errorInterceptor{log: log, failed: failed}
}

// callRecord collects what inner interceptors learn about a call for its audit line.
type callRecord struct {
	procedure string
	protocol  string
	peer      string
	requestID string
	start     time.Time
	// tokenIndex is the position of the admin token that authenticated the call, -1 if none.
	tokenIndex int
}

type callKey struct{}

// noteToken records which configured admin token authenticated the call. Only its position is
// kept: the audit log can say which credential acted without ever holding the credential.
func noteToken(ctx context.Context, index int) {
	if rec, ok := ctx.Value(callKey{}).(*callRecord); ok {
		rec.tokenIndex = index
	}
}

func (i *errorInterceptor) begin(ctx context.Context, spec connect.Spec, peer connect.Peer, incomingID string) (context.Context, *callRecord) {
	rec := &callRecord{
		procedure: spec.Procedure, protocol: peer.Protocol, peer: peer.Addr,
		requestID: requestid.Adopt(incomingID), start: time.Now(), tokenIndex: -1,
	}
	return context.WithValue(ctx, callKey{}, rec), rec
}

// finish logs the call and returns the client-safe error, nil on success.
func (i *errorInterceptor) finish(ctx context.Context, rec *callRecord, err error) *connect.Error {
	attrs := []slog.Attr{
		slog.String("procedure", rec.procedure),
		slog.String("request_id", rec.requestID),
		slog.String("protocol", rec.protocol),
		slog.String("peer", rec.peer),
		slog.Int64("duration_ms", time.Since(rec.start).Milliseconds()),
	}
	if rec.tokenIndex >= 0 {
		attrs = append(attrs, slog.Int("admin_token", rec.tokenIndex))
	}
	if err == nil {
		i.log.LogAttrs(ctx, slog.LevelInfo, "admin call", append(attrs, slog.String("outcome", "ok"))...)
		return nil
	}
	ce := toConnect(err)
	ce.Meta().Set(requestid.Header, rec.requestID)
	level := slog.LevelInfo
	if ce.Code() == connect.CodeInternal {
		level = slog.LevelError
	}
	// The wrapped error text stays in the server log; by house rule it holds ids and lengths,
	// never token contents.
	attrs = append(attrs, slog.String("outcome", ce.Code().String()),
		slog.String("code", ErrorCode(ce)), slog.String("error", err.Error()))
	i.log.LogAttrs(ctx, level, "admin call", attrs...)
	i.failed(rec.procedure, ErrorCode(ce))
	return ce
}

// WrapUnary implements connect.Interceptor.
func (i *errorInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		ctx, rec := i.begin(ctx, req.Spec(), req.Peer(), req.Header().Get(requestid.Header))
		resp, err := next(ctx, req)
		if ce := i.finish(ctx, rec, err); ce != nil {
			return nil, ce
		}
		resp.Header().Set(requestid.Header, rec.requestID)
		return resp, nil
	}
}

// WrapStreamingClient implements connect.Interceptor; client errors are not rewritten.
func (i *errorInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor, so streaming RPCs (the key rewrap) get the
// same error mapping and audit line.
func (i *errorInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, rec := i.begin(ctx, conn.Spec(), conn.Peer(), conn.RequestHeader().Get(requestid.Header))
		conn.ResponseHeader().Set(requestid.Header, rec.requestID)
		if ce := i.finish(ctx, rec, next(ctx, conn)); ce != nil {
			return ce
		}
		return nil
	}
}
