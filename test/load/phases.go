package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
)

// overload sends GET /v1/vehicles at overloadX times the capacity the standard scenario measured,
// in an open loop (arrivals keep coming whatever the answers), and beside it a trickle of locks,
// probes, admin scrapes and webhook deliveries retried the way Smartcar retries; then it checks
// what the admission control promises.
func (h *harness) overload(ctx context.Context, rep *report) error {
	capacity := 0.0
	for _, e := range rep.Endpoints {
		if e.Name == "GET /v1/vehicles" {
			capacity = e.Server.RPS
		}
	}
	for _, sc := range h.f.scenarios(h.o.workers) {
		if capacity == 0 && sc.name == "GET /v1/vehicles" { // the standard phase skipped it (-scenarios)
			capacity = h.measure(ctx, sc.name+" (capacity)", sc.run, h.pids()).RPS
		}
	}
	arrivals := int(capacity * h.o.overloadX)
	d := max(h.o.duration, 3*time.Second)
	f := h.f
	pairs := f.pairs()
	// The generator keeps at most 512 connections open, as a load balancer in front of a replica
	// would: thousands of new connections a second would measure the kernel and the client, not
	// the admission control. Arrivals wait in the client for a connection; the checks read the
	// wire time (request written to first byte), the server's share.
	oc := &client{http: newClient(512)}
	oc.http.Transport.(*http.Transport).MaxConnsPerHost = 512
	var lockN atomic.Int64
	var webhookIDs sync.Map
	get := func(u, bearer string) op {
		return func(ctx context.Context, _ int) outcome { return oc.do(ctx, http.MethodGet, u, nil, bearer, nil) }
	}
	r := h.replicas[0]
	streams := []struct {
		name string
		rate int
		fn   op
	}{
		{"GET /v1/vehicles (the flood)", arrivals, func(ctx context.Context, _ int) outcome {
			return oc.do(ctx, http.MethodGet, r.base+"/v1/vehicles", nil, f.account().s.access, nil)
		}},
		{"lock and unlock", 20, func(ctx context.Context, _ int) outcome {
			i := lockN.Add(1)
			action := "lock"
			if i%2 == 0 {
				action = "unlock"
			}
			p := pairs[int(i)%len(pairs)]
			return oc.do(ctx, http.MethodPost, r.base+"/v1/vehicles/"+p.vehicle+"/commands", map[string]string{"action": action},
				p.a.s.access, map[string]string{"Idempotency-Key": randomKey()})
		}},
		{"GET /healthz", 20, get(r.base+"/healthz", "")},
		{"GET /readyz", 20, get(r.base+"/readyz", "")},
		{"admin GET /metrics", 10, get(r.admin+"/metrics", "")},
		{"webhook (retried until 200)", 50, func(ctx context.Context, _ int) outcome {
			body, id, err := f.webhookBody(f.events.Add(1))
			if err != nil {
				return outcome{err: err}
			}
			webhookIDs.Store(id, true)
			var o outcome
			// Smartcar retries a failed delivery; compressed here to 250 ms apart, 40 times.
			for range 40 {
				o = oc.do(ctx, http.MethodPost, r.base+"/v1/webhooks/smartcar", body, "",
					map[string]string{"SC-Signature": smartcarsim.Sign(f.webhookSecret, body)})
				if o.status == http.StatusOK {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			return o
		}},
	}
	// The server's own account of its answers: the request-duration histogram, before and after.
	refusedIn0, refused0, _ := served(r.admin, "/v1/vehicles", "503", "0.01")
	admittedIn0, admitted0, _ := served(r.admin, "/v1/vehicles", "200", "0.1")
	recs := make([]*recorder, len(streams))
	var wg sync.WaitGroup
	start := time.Now()
	for i, s := range streams {
		wg.Go(func() { recs[i] = openLoop(ctx, s.name, s.rate, d, 16384, s.fn) })
	}
	wg.Wait()
	el := time.Since(start)
	refusedIn1, refused1, err := served(r.admin, "/v1/vehicles", "503", "0.01")
	if err != nil {
		return err
	}
	admittedIn1, admitted1, err := served(r.admin, "/v1/vehicles", "200", "0.1")
	if err != nil {
		return err
	}
	share := func(in, all float64) float64 {
		if all == 0 {
			return 0
		}
		return 100 * in / all
	}
	refusedFast := share(refusedIn1-refusedIn0, refused1-refused0)
	admittedFast := share(admittedIn1-admittedIn0, admitted1-admitted0)
	or := &overloadReport{CapacityRPS: capacity, ArrivalRPS: arrivals, Classes: map[string]stats{}}
	wire := func(s sample) time.Duration { return s.wire }
	for i, s := range streams {
		or.Classes[s.name+", arrival to answer"] = summarise(recs[i].samples, el, nil)
		or.Classes[s.name+", on the wire"] = summariseBy(recs[i].samples, el, nil, wire)
	}
	flood := recs[0].samples
	refused := summariseBy(flood, el, func(s sample) bool { return s.code == "OVERLOADED" }, wire)
	admitted := summariseBy(flood, el, func(s sample) bool { return s.status == http.StatusOK }, wire)
	or.Classes["GET /v1/vehicles refused, on the wire"] = refused
	or.Classes["GET /v1/vehicles admitted, on the wire"] = admitted
	noRetryAfter := 0
	for _, s := range flood {
		if s.code == "OVERLOADED" && s.retryAfter == "" {
			noRetryAfter++
		}
	}
	all200 := func(name string) check {
		st := or.Classes[name+", on the wire"]
		return check{Promise: name + " stays served", Got: outcomes(st.Outcomes), OK: len(st.Outcomes) == 1 && st.Outcomes["200"] > 0}
	}
	locks := or.Classes["lock and unlock, on the wire"]
	lockShed := locks.Outcomes["503 OVERLOADED"] + locks.Outcomes["no answer"]
	for k, n := range locks.Outcomes {
		if len(k) >= 1 && k[0] == '5' && k != "503 OVERLOADED" {
			lockShed += n
		}
	}
	lost, err := h.webhooksMissing(ctx, &webhookIDs)
	if err != nil {
		return err
	}
	hooks := or.Classes["webhook (retried until 200), on the wire"]
	five := 0
	for _, rec := range recs {
		for _, s := range rec.samples {
			if s.status >= 500 && s.code != "OVERLOADED" {
				five++
			}
		}
	}
	or.Checks = []check{
		{Promise: "excess requests are refused with 503 OVERLOADED and Retry-After", Got: fmt.Sprintf("%d refused, %d without Retry-After", refused.Requests, noRetryAfter),
			OK: refused.Requests > 0 && noRetryAfter == 0},
		{Promise: "a refusal is answered within 10 ms (p99, by the server's request-duration histogram)",
			Got: fmt.Sprintf("%.2f %% of %.0f within 10 ms; on the wire, with the generator on the same cores: p50 %.1f ms, p99 %.1f ms", refusedFast, refused1-refused0, refused.P50, refused.P99),
			OK:  refused1-refused0 > 0 && refusedFast >= 99},
		{Promise: "admitted requests keep p99 < 100 ms (by the server's histogram)",
			Got: fmt.Sprintf("%.2f %% of %.0f within 100 ms; on the wire: p50 %.1f ms, p99 %.1f ms", admittedFast, admitted1-admitted0, admitted.P50, admitted.P99),
			OK:  admitted1-admitted0 > 0 && admittedFast >= 99},
		all200("GET /healthz"), all200("GET /readyz"), all200("admin GET /metrics"),
		{Promise: "lock and unlock keep their reserve (none shed, none failed)", Got: outcomes(locks.Outcomes), OK: lockShed == 0 && locks.Requests > 0},
		{Promise: "every webhook is acknowledged, after Smartcar-style retries, and stored (none lost)",
			Got: fmt.Sprintf("%s; %d of them missing from the inbox", outcomes(hooks.Outcomes), lost), OK: lost == 0 && hooks.Outcomes["200"] == hooks.Requests},
		{Promise: "no 5xx but OVERLOADED", Got: fmt.Sprintf("%d", five), OK: five == 0},
	}
	rep.Overload = or
	return nil
}

// webhooksMissing counts the events of ids that are not in the server's inbox.
func (h *harness) webhooksMissing(ctx context.Context, ids *sync.Map) (int, error) {
	var list []string
	ids.Range(func(k, _ any) bool { list = append(list, k.(string)); return true })
	conn, err := pgx.Connect(ctx, h.db.url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var stored int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM webhook_inbox WHERE source = 'smartcar' AND event_id = ANY($1)`, list).Scan(&stored)
	return len(list) - stored, err
}

// longPollsAndDrain parks the cars' answers at the simulator, so every command stays in flight,
// holds o.longPolls status long-polls open on them, reads the server's memory and goroutines, and
// then sends SIGTERM: the drain must answer every poll at once.
func (h *harness) longPollsAndDrain(ctx context.Context, rep *report) error {
	r := h.replicas[0]
	lr := &longPollReport{Polls: h.o.longPolls}
	u, _ := processUsage(r.cmd.Process.Pid)
	lr.RSSIdle = u.RSSBytes
	var err error
	if lr.GoroutinesIdle, err = goroutines(r.admin); err != nil {
		return err
	}
	h.sims.smartcar.SetLatency(smartcarsim.EndpointSecurity, 20*time.Second)
	defer h.sims.smartcar.ClearFaults()
	type waiting struct {
		id, access string
	}
	var mu sync.Mutex
	var cmds []waiting
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, p := range h.f.pairs() {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			o := h.f.c.do(ctx, http.MethodPost, r.base+"/v1/vehicles/"+p.vehicle+"/commands", map[string]string{"action": "unlock"},
				p.a.s.access, map[string]string{"Idempotency-Key": randomKey()})
			if o.status == http.StatusAccepted {
				mu.Lock()
				cmds = append(cmds, waiting{o.str("id"), p.a.s.access})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(cmds) == 0 {
		return fmt.Errorf("long-polls: no command stayed in flight")
	}
	fmt.Fprintf(os.Stderr, "load: %d long-polls on %d commands in flight\n", h.o.longPolls, len(cmds))
	answers := make(chan time.Time, h.o.longPolls)
	statuses := make(chan int, h.o.longPolls)
	polls := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: h.o.longPolls}, Timeout: time.Minute}
	pc := &client{http: polls}
	for i := range h.o.longPolls {
		c := cmds[i%len(cmds)]
		go func() {
			o := pc.do(ctx, http.MethodGet, r.base+"/v1/commands/"+c.id+"?wait=20", nil, c.access, nil)
			statuses <- o.status
			answers <- time.Now()
		}()
	}
	// Wait until the server holds them all (each is at least one goroutine), then read.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		n, err := goroutines(r.admin)
		if err == nil && n >= lr.GoroutinesIdle+h.o.longPolls {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	u, _ = processUsage(r.cmd.Process.Pid)
	lr.RSSPolling = u.RSSBytes
	lr.GoroutinesPolls, _ = goroutines(r.admin)
	early := len(answers)

	sigterm := time.Now()
	exited := make(chan time.Duration, 1)
	go func() { exited <- r.stop() }()
	var last time.Time
	ok := 0
	timeout := time.After(30 * time.Second)
collect:
	for lr.Answered < h.o.longPolls {
		select {
		case t := <-answers:
			lr.Answered++
			if t.After(last) {
				last = t
			}
			if <-statuses == http.StatusOK {
				ok++
			}
		case <-timeout:
			break collect
		}
	}
	lr.DrainSeconds = last.Sub(sigterm).Seconds()
	lr.ExitSeconds = (<-exited).Seconds()
	h.replicas = h.replicas[1:]
	perPoll := float64(lr.GoroutinesPolls-lr.GoroutinesIdle) / float64(h.o.longPolls)
	lr.Checks = []check{
		{Promise: "every long-poll was waiting before the drain", Got: fmt.Sprintf("%d answered early", early), OK: early == 0},
		{Promise: "RSS < 100 MB with every long-poll waiting", Got: mb(lr.RSSPolling), OK: lr.RSSPolling < 100<<20},
		{Promise: "goroutines bounded (at most 3 per waiting poll)", Got: fmt.Sprintf("%d → %d, %.1f per poll", lr.GoroutinesIdle, lr.GoroutinesPolls, perPoll), OK: perPoll <= 3},
		{Promise: "SIGTERM answers every long-poll (200, the command as it is) within 5 s",
			Got: fmt.Sprintf("%d of %d answered, %d with 200, the last %.2f s after SIGTERM", lr.Answered, h.o.longPolls, ok, lr.DrainSeconds),
			OK:  lr.Answered == h.o.longPolls && ok == h.o.longPolls && lr.DrainSeconds < 5},
	}
	rep.LongPolls = lr
	return nil
}

// scaleOut runs the same closed-loop load on 1, 2 … o.replicas servers, round robin.
func (h *harness) scaleOut(ctx context.Context, rep *report) error {
	names := map[string]bool{"GET /v1/vehicles": true, "lock, many vehicles": true, "webhook, good signature": true}
	for n := 1; n <= h.o.replicas; n++ {
		for len(h.replicas) < n {
			if _, err := h.addReplica(ctx, ""); err != nil {
				return err
			}
		}
		rr := replicaReport{Replicas: n, Scenarios: map[string]measured{}}
		for _, sc := range h.f.scenarios(h.o.workers) {
			if names[sc.name] {
				rr.Scenarios[sc.name] = h.measure(ctx, fmt.Sprintf("%s on %d replicas", sc.name, n), sc.run, h.pids())
			}
		}
		rep.Replicas = append(rep.Replicas, rr)
	}
	return nil
}
