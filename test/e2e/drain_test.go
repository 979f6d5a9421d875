package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/app/command"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
	"github.com/betterkey/backend/cmd/betterkeyd/wiring"
)

// A replica that stops fails /readyz at once, answers its long-polls with the command as it is,
// keeps serving through the shutdown delay (asking clients to reconnect elsewhere), finishes the
// command it was sending, and only then closes its listener.
func TestDrainReleasesLongPollsAndFinishesCommands(t *testing.T) {
	e := startServer(t)
	s, cars := e.garage(1)
	var (
		drain *wiring.Drain
		cmds  *command.Service
	)
	r, stop := e.replica(fx.Populate(&drain, &cmds), fx.Decorate(func(c config.Config) config.Config {
		c.ShutdownDelay = 3 * time.Second
		return c
	}))
	e.sc.SetLatency(smartcarsim.EndpointSecurity, 4*time.Second) // the car takes its time

	sub := r.lock(s.access, cars[0].id, "lock")
	r.expect(sub, http.StatusAccepted, "")
	id := sub.str("id")
	polled := make(chan response, 1)
	go func() { polled <- r.do("GET", "/v1/commands/"+id+"?wait=20", nil, s.access) }()
	waitFor(t, "the long-poll to wait", func() bool { return cmds.Waiting() == 1 })

	stopped := make(chan error, 1)
	go func() { stopped <- drain.Stop(context.Background(), stop) }()

	poll := <-polled // released: answered before the command could end
	r.expect(poll, http.StatusOK, "")
	if isFinal(poll.str("status")) {
		t.Fatalf("long-poll waited for the end: %s", poll.raw)
	}
	ready := r.do("GET", "/readyz", nil, "")
	r.expect(ready, http.StatusServiceUnavailable, "DRAINING")
	if ready.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	me := r.do("GET", "/v1/me", nil, s.access) // still served during the delay
	r.expect(me, http.StatusOK, "")
	if !me.closed {
		t.Fatal("no Connection: close while draining")
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(r.servers.HTTPURL() + "/healthz"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("after the drain: %v, want connection refused", err)
	}
	if got := e.final(s.access, id).str("status"); got != "succeeded" {
		t.Fatalf("command ended %s, want succeeded: the draining replica sends what it started", got)
	}
	if n := e.carCommands(cars[0]); n != 1 {
		t.Fatalf("car received %d commands, want 1", n)
	}
	logs := r.logs.String()
	for _, want := range []string{`"msg":"drain started"`, `"long_polls_released":1`, `"msg":"drain finished"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("drain logs lack %s", want)
		}
	}
}

// waitFor polls cond every 10 ms until it holds, failing the test after 10 s: a long-poll or a
// background step needs a moment to register, and the test must not race it.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
