package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// harness is one run's servers, simulators and database.
type harness struct {
	o          options
	dir, bin   string
	sims       *sims
	db         *database
	replicas   []*replica
	signingKey string
	keyring    string
	f          *fixture
	// floor is the raw floor's process, when it runs.
	floor *replica
}

func run(ctx context.Context, o options) (*report, error) {
	rep := &report{Started: time.Now().UTC(), Command: strings.Join(os.Args[1:], " "),
		Machine: fmt.Sprintf("%d CPUs, %s, %s/%s", runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)}
	h := &harness{o: o}
	defer h.close()
	if err := h.setup(ctx); err != nil {
		return nil, err
	}
	if len(h.replicas) > 0 {
		rep.Idle, _ = h.usage()
	}
	if err := h.standard(ctx, rep); err != nil {
		return rep, err
	}
	if o.base != "" {
		return rep, nil // the rest stops, restarts and slows the server: only for servers the harness owns
	}
	// The long-polls come before the overload, whose flood leaves the heap grown: their memory
	// figure is the one of a server that has served the standard load. Their drain stops the
	// replica, so the overload gets a fresh one.
	if o.longPolls > 0 {
		if err := h.longPollsAndDrain(ctx, rep); err != nil {
			return rep, err
		}
		if _, err := h.addReplica(ctx, ""); err != nil {
			return rep, err
		}
	}
	if o.overload {
		if err := h.overload(ctx, rep); err != nil {
			return rep, err
		}
	}
	if o.replicas > 1 {
		if err := h.scaleOut(ctx, rep); err != nil {
			return rep, err
		}
	}
	return rep, ctx.Err()
}

func (h *harness) setup(ctx context.Context) error {
	c := newClient(4096)
	h.f = &fixture{c: &client{http: c}, refresh: &refreshState{m: map[int]session{}}, events: &atomic.Int64{}}
	if h.o.base != "" {
		h.f.c.mint = mintOver(c, h.o.base)
		h.f.bases = []string{strings.TrimSuffix(h.o.base, "/")}
		if h.o.admin != "" {
			h.f.admins = []string{strings.TrimSuffix(h.o.admin, "/")}
		}
		// The development server's own simulator seeds these two cars and signs with this token.
		h.f.webhookSecret = "betterkey-dev-management-token"
		h.f.smartcarCars = []string{"load-car-1", "load-car-2"}
		fmt.Fprintf(os.Stderr, "load: seeding %d accounts on %s\n", h.o.accounts, h.o.base)
		return h.f.seed(ctx, h.o.accounts)
	}
	var err error
	if h.dir, err = os.MkdirTemp("", "betterkey-load-"); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "load: building betterkeyd")
	if h.bin, err = buildServer(h.dir); err != nil {
		return err
	}
	if h.db, err = createDatabase(ctx, h.o.dbURL); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	// Connect's redirect names the first replica; the seeding runs through it.
	if h.sims, err = startSims("http://" + addr + "/v1/smartcar/callback"); err != nil {
		return err
	}
	h.signingKey, h.keyring = newSigningKey(), h.dir+"/keyring.json"
	h.f.c.mint = mintWith(h.sims.apple)
	h.f.webhookSecret = h.sims.managementToken
	h.f.smartcarCars = h.sims.cars
	if _, err := h.addReplica(ctx, addr); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "load: seeding %d accounts, two cars each\n", h.o.accounts)
	return h.f.seed(ctx, h.o.accounts)
}

// addReplica starts one more server on the run's database and simulators and routes to it.
func (h *harness) addReplica(ctx context.Context, addr string) (*replica, error) {
	if addr == "" {
		var err error
		if addr, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	vars := serverVars(h.sims, h.db.url, addr, adminAddr, h.keyring, h.signingKey, h.o.serverEnv)
	r, err := startReplica(ctx, h.bin, h.dir, vars)
	if err != nil {
		return nil, err
	}
	h.replicas = append(h.replicas, r)
	h.route()
	return r, nil
}

func (h *harness) route() {
	h.f.bases, h.f.admins = nil, nil
	for _, r := range h.replicas {
		h.f.bases = append(h.f.bases, r.base)
		h.f.admins = append(h.f.admins, r.admin)
	}
}

// usage sums the replicas' memory and CPU.
func (h *harness) usage() (usage, error) {
	var sum usage
	for _, r := range h.replicas {
		u, err := processUsage(r.cmd.Process.Pid)
		if err != nil {
			return sum, err
		}
		sum.RSSBytes += u.RSSBytes
		sum.CPUSeconds += u.CPUSeconds
	}
	return sum, nil
}

func (h *harness) close() {
	var wg sync.WaitGroup
	for _, r := range append(h.replicas, h.floor) {
		if r != nil {
			wg.Go(func() { r.stop() })
		}
	}
	wg.Wait()
	if h.sims != nil {
		h.sims.close()
	}
	if h.db != nil {
		h.db.drop()
	}
	if h.dir != "" {
		_ = os.RemoveAll(h.dir)
	}
}

// measured is one scenario's figures on one target.
type measured struct {
	stats
	CPUSeconds float64 `json:"cpu_seconds"`
	RSSBytes   int64   `json:"rss_bytes"`
}

// measure warms up, then runs fn for the scenario's time and reads the servers' CPU and memory
// around it (pids: the processes doing the work; none for -base).
func (h *harness) measure(ctx context.Context, name string, fn op, pids []int) measured {
	if h.o.warmup > 0 {
		h.load(ctx, name+" (warm-up)", h.o.warmup, fn)
	}
	before := sumUsage(pids)
	start := time.Now()
	rec := h.load(ctx, name, h.o.duration, fn)
	el := time.Since(start)
	after := sumUsage(pids)
	return measured{stats: summarise(rec.samples, el, nil), CPUSeconds: after.CPUSeconds - before.CPUSeconds, RSSBytes: after.RSSBytes}
}

func (h *harness) load(ctx context.Context, name string, d time.Duration, fn op) *recorder {
	if h.o.rate > 0 {
		return openLoop(ctx, name, h.o.rate, d, 4096, fn)
	}
	return closedLoop(ctx, name, h.o.workers, d, fn)
}

func sumUsage(pids []int) usage {
	var sum usage
	for _, p := range pids {
		if u, err := processUsage(p); err == nil {
			sum.RSSBytes += u.RSSBytes
			sum.CPUSeconds += u.CPUSeconds
		}
	}
	return sum
}

func (h *harness) pids() []int {
	var out []int
	for _, r := range h.replicas {
		out = append(out, r.cmd.Process.Pid)
	}
	return out
}

// standard runs every scenario on the server and, where the floor has the endpoint, on the floor
// right after it.
func (h *harness) standard(ctx context.Context, rep *report) error {
	var floorScenarios []scenario
	if h.o.floor && h.o.base == "" {
		ff, err := h.startFloor(ctx)
		if err != nil {
			return fmt.Errorf("raw floor: %w", err)
		}
		floorScenarios = ff.scenarios(h.o.workers)
	}
	for i, sc := range h.f.scenarios(h.o.workers) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if h.o.only != nil && !h.o.only.MatchString(sc.name) {
			continue
		}
		e := endpoint{Name: sc.name, Server: h.measure(ctx, sc.name, sc.run, h.pids())}
		if sc.floor && floorScenarios != nil {
			fl := h.measure(ctx, sc.name+" (floor)", floorScenarios[i].run, []int{h.floor.cmd.Process.Pid})
			e.Floor = &fl
		}
		rep.Endpoints = append(rep.Endpoints, e)
		if u, err := h.usage(); err == nil && u.RSSBytes > rep.StandardPeakRSS {
			rep.StandardPeakRSS = u.RSSBytes
		}
	}
	if h.floor != nil {
		h.floor.stop()
		h.floor = nil
	}
	return nil
}
