package connectapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"

	"connectrpc.com/connect"

	"github.com/betterkey/backend/adapters/bearer"
	"github.com/betterkey/backend/domain"
)

// authInterceptor admits a call only when it carries one of the configured admin tokens. It
// covers unary and streaming handlers alike, so a streaming RPC added later cannot skip it.
type authInterceptor struct {
	// digests are SHA-256 of the configured tokens: comparing fixed-size digests keeps the
	// comparison time independent of the tokens' lengths.
	digests [][sha256.Size]byte
}

// newAuthInterceptor hashes the tokens once; empty entries are ignored rather than matching an
// empty bearer value.
func newAuthInterceptor(tokens []domain.Secret) *authInterceptor {
	a := &authInterceptor{}
	for _, t := range tokens {
		if !t.Empty() {
			a.digests = append(a.digests, sha256.Sum256([]byte(t.Reveal())))
		}
	}
	return a
}

// empty reports whether no token can ever match, so the server can warn at startup.
func (a *authInterceptor) empty() bool { return len(a.digests) == 0 }

// authenticate returns the position of the matching token in the configuration (for the audit
// log; tokens are never logged) or an error wrapping domain.ErrInvalidAdminToken. The presented
// value is compared against every configured token without an early exit, so timing tells
// neither which token nearly matched nor how many there are.
func (a *authInterceptor) authenticate(h http.Header) (int, error) {
	presented, err := bearerToken(h)
	if err != nil {
		return -1, err
	}
	got := sha256.Sum256([]byte(presented))
	match, index := 0, -1
	for i, want := range a.digests {
		eq := subtle.ConstantTimeCompare(got[:], want[:])
		index = subtle.ConstantTimeSelect(eq, i, index)
		match |= eq
	}
	if match != 1 {
		return -1, fmt.Errorf("authenticate admin: token of %d bytes matches none: %w", len(presented), domain.ErrInvalidAdminToken)
	}
	return index, nil
}

// bearerToken extracts the single bearer credential of the request, by the rule REST uses too.
func bearerToken(h http.Header) (string, error) {
	token, err := bearer.Token(h)
	if err != nil {
		return "", fmt.Errorf("authenticate admin: %w: %w", err, domain.ErrInvalidAdminToken)
	}
	return token, nil
}

// WrapUnary implements connect.Interceptor.
func (a *authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		index, err := a.authenticate(req.Header())
		if err != nil {
			return nil, err
		}
		noteToken(ctx, index)
		return next(ctx, req)
	}
}

// WrapStreamingClient implements connect.Interceptor; clients are not authenticated here.
func (a *authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (a *authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		index, err := a.authenticate(conn.RequestHeader())
		if err != nil {
			return err
		}
		noteToken(ctx, index)
		return next(ctx, conn)
	}
}

// RequireToken serves h only to requests that carry one of the admin tokens; others get 401. It
// guards the operator endpoints that are plain HTTP rather than Connect (/metrics where it shares
// the public listener), with the same tokens and the same constant-time check.
func RequireToken(tokens []domain.Secret, h http.Handler) http.Handler {
	a := newAuthInterceptor(tokens)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := a.authenticate(r.Header); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="betterkey-admin"`)
			http.Error(w, domain.ErrInvalidAdminToken.Msg, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
