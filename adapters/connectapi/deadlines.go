package connectapi

import (
	"context"
	"net/http"
	"time"
)

// streamIdleTimeout is how long a server stream may go without sending before the connection's
// write deadline cuts it: longer than any one rewrap batch takes, short enough that a stuck
// client does not hold a connection for long.
const streamIdleTimeout = 2 * time.Minute

// responseControllerKey carries the call's *http.ResponseController to a streaming handler.
type responseControllerKey struct{}

// withResponseController lets streaming handlers reach the connection's write deadline, which
// the Connect handler API does not expose. The server's WriteTimeout is right for unary calls but
// would cut a long server stream mid-way.
func withResponseController(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), responseControllerKey{}, http.NewResponseController(w))
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// extendStream pushes the stream's write deadline streamIdleTimeout into the future. It is a no-op
// where the server offers no deadlines. (The read deadline is left alone: the request is read by
// then, and net/http watches the idle connection for the client going away.)
func extendStream(ctx context.Context) {
	rc, ok := ctx.Value(responseControllerKey{}).(*http.ResponseController)
	if !ok {
		return
	}
	_ = rc.SetWriteDeadline(time.Now().Add(streamIdleTimeout)) // ErrNotSupported: nothing to extend
}
