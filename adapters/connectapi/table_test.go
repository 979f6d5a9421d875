package connectapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"connectrpc.com/connect"

	"github.com/betterkey/backend/domain"
)

// TestCodeForCoversEveryKind fails when a new domain kind is added without a Connect code.
func TestCodeForCoversEveryKind(t *testing.T) {
	for _, k := range domain.Kinds() {
		if _, ok := codeFor(k); !ok {
			t.Errorf("kind %v has no connect code", k)
		}
	}
	if _, ok := codeFor(domain.Kind(255)); ok {
		t.Errorf("an unknown kind has a connect code")
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		code  connect.Code
		msg   string
		sCode string
	}{
		{"sentinel", domain.ErrNotFound, connect.CodeNotFound, "not found", "NOT_FOUND"},
		{"wrapped sentinel", fmt.Errorf("get user: %w", domain.ErrNotFound), connect.CodeNotFound, "not found", "NOT_FOUND"},
		{"validation", domain.Invalid("user_id", "must be a lowercase UUID"), connect.CodeInvalidArgument, "user_id: must be a lowercase UUID", "VALIDATION_FAILED"},
		{"conflict", domain.ErrConflict, connect.CodeAlreadyExists, "already exists", "CONFLICT"},
		{"precondition", &domain.Error{Kind: domain.KindFailedPrecondition, Code: "X", Msg: "x"}, connect.CodeFailedPrecondition, "x", "X"},
		{"too large", domain.ErrTooLarge, connect.CodeResourceExhausted, "request body is too large", "PAYLOAD_TOO_LARGE"},
		{"rate limited", domain.ErrRateLimited, connect.CodeResourceExhausted, "too many requests", "RATE_LIMITED"},
		{"unavailable", domain.ErrUnavailable, connect.CodeUnavailable, "a dependency is unavailable, try again later", "UNAVAILABLE"},
		{"forbidden", domain.ErrForbidden, connect.CodePermissionDenied, "not allowed", "FORBIDDEN"},
		{"unauthenticated", domain.ErrInvalidAdminToken, connect.CodeUnauthenticated, "admin token is missing or invalid", "INVALID_ADMIN_TOKEN"},
		{"unclassified", errors.New("dial tcp 10.0.0.1:5432: secret"), connect.CodeInternal, "internal error", "INTERNAL"},
		{"internal kind keeps no text", &domain.Error{Kind: domain.KindInternal, Code: "DB", Msg: "db password wrong"}, connect.CodeInternal, "internal error", "INTERNAL"},
		{"unknown kind", &domain.Error{Kind: domain.Kind(200), Code: "?", Msg: "leak"}, connect.CodeInternal, "internal error", "INTERNAL"},
		{"canceled", fmt.Errorf("load: %w", context.Canceled), connect.CodeCanceled, "request canceled", "CANCELED"},
		{"deadline", fmt.Errorf("load: %w", context.DeadlineExceeded), connect.CodeDeadlineExceeded, "request timed out", "TIMEOUT"},
		{"connect canceled", connect.NewError(connect.CodeCanceled, errors.New("stream reset")), connect.CodeCanceled, "request canceled", "CANCELED"},
		{"foreign connect error", connect.NewError(connect.CodeNotFound, errors.New("upstream said")), connect.CodeInternal, "internal error", "INTERNAL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce := toConnect(tt.err)
			if ce.Code() != tt.code || ce.Message() != tt.msg || ErrorCode(ce) != tt.sCode {
				t.Errorf("toConnect = (%v, %q, %q), want (%v, %q, %q)", ce.Code(), ce.Message(), ErrorCode(ce), tt.code, tt.msg, tt.sCode)
			}
		})
	}
}

// fakeStream is a server stream with no messages, enough to drive the streaming interceptors
// that a future streaming RPC (the key rewrap) will pass through.
type fakeStream struct {
	reqHeader, respHeader, trailer http.Header
}

func (f *fakeStream) Spec() connect.Spec {
	return connect.Spec{Procedure: "/betterkey.admin.v1.AdminService/Rewrap", StreamType: connect.StreamTypeServer}
}
func (f *fakeStream) Peer() connect.Peer {
	return connect.Peer{Addr: "127.0.0.1:1", Protocol: connect.ProtocolGRPC}
}
func (f *fakeStream) Receive(any) error            { return io.EOF }
func (f *fakeStream) RequestHeader() http.Header   { return f.reqHeader }
func (f *fakeStream) Send(any) error               { return nil }
func (f *fakeStream) ResponseHeader() http.Header  { return f.respHeader }
func (f *fakeStream) ResponseTrailer() http.Header { return f.trailer }

func TestStreamingHandlersAreGuarded(t *testing.T) {
	auth := newAuthInterceptor([]domain.Secret{domain.NewSecret("stream-token-0123456789abcdef0123")})
	errs := newErrorInterceptor(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	tests := []struct {
		name       string
		header     string
		handlerErr error
		wantCode   connect.Code
		wantCalled bool
	}{
		{name: "no token", wantCode: connect.CodeUnauthenticated},
		{name: "wrong token", header: "Bearer nope", wantCode: connect.CodeUnauthenticated},
		{name: "ok", header: "Bearer stream-token-0123456789abcdef0123", wantCalled: true},
		{name: "handler fails", header: "Bearer stream-token-0123456789abcdef0123", handlerErr: errors.New("vault: secret detail"),
			wantCode: connect.CodeInternal, wantCalled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			handler := func(context.Context, connect.StreamingHandlerConn) error {
				called = true
				return tt.handlerErr
			}
			// The production order: errors outermost, then auth.
			wrapped := errs.WrapStreamingHandler(auth.WrapStreamingHandler(handler))
			conn := &fakeStream{reqHeader: http.Header{}, respHeader: http.Header{}, trailer: http.Header{}}
			if tt.header != "" {
				conn.reqHeader.Set("Authorization", tt.header)
			}
			err := wrapped(t.Context(), conn)
			if called != tt.wantCalled {
				t.Errorf("handler called = %v, want %v", called, tt.wantCalled)
			}
			if tt.wantCode == 0 {
				if err != nil {
					t.Errorf("err = %v, want nil", err)
				}
				return
			}
			if got := connect.CodeOf(err); got != tt.wantCode {
				t.Errorf("code = %v, want %v", got, tt.wantCode)
			}
			if ce, _ := errors.AsType[*connect.Error](err); ce != nil && ce.Code() == connect.CodeInternal && ce.Message() != "internal error" {
				t.Errorf("internal message leaked: %q", ce.Message())
			}
			if conn.respHeader.Get("X-Request-Id") == "" {
				t.Errorf("no request id in the response header")
			}
		})
	}
}
