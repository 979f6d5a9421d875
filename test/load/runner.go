package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// op is one user action; worker is the index of the goroutine running it, so an op can keep
// per-worker state (its own vehicle, its own session) without locks.
type op func(ctx context.Context, worker int) outcome

// sample is one measured op.
type sample struct {
	latency time.Duration
	status  int
	code    string
	failed  bool // no answer: a transport error or a timeout
	// retryAfter is the Retry-After header of the answer.
	retryAfter string
	wire       time.Duration
	// unsent: the generator had no room to send it (its in-flight bound was reached).
	unsent bool
}

// recorder collects samples from many goroutines.
type recorder struct {
	mu      sync.Mutex
	samples []sample
	count   atomic.Int64
	errs    atomic.Int64
}

func (r *recorder) add(s sample) {
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.mu.Unlock()
	r.count.Add(1)
	if s.failed || s.status >= 500 {
		r.errs.Add(1)
	}
}

func timed(ctx context.Context, worker int, fn op) sample {
	start := time.Now()
	o := fn(ctx, worker)
	s := sample{latency: time.Since(start), status: o.status, code: o.code, failed: o.err != nil, wire: o.wire}
	if o.header != nil {
		s.retryAfter = o.header.Get("Retry-After")
	}
	return s
}

// closedLoop runs fn on workers goroutines back to back for d: the throughput a fixed number of
// clients gets.
func closedLoop(ctx context.Context, name string, workers int, d time.Duration, fn op) *recorder {
	rec := &recorder{}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	stop := progress(name, d, rec)
	defer stop()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				s := timed(context.WithoutCancel(ctx), w, fn)
				if ctx.Err() != nil && s.failed {
					return
				}
				rec.add(s)
			}
		})
	}
	wg.Wait()
	return rec
}

// openLoop starts fn rate times a second for d whatever the answers are (the arrivals an
// overloaded server sees), at most maxInFlight at once; an arrival beyond that is counted as
// failed, since a client would have given up.
func openLoop(ctx context.Context, name string, rate int, d time.Duration, maxInFlight int, fn op) *recorder {
	rec := &recorder{}
	stop := progress(name, d, rec)
	defer stop()
	slots := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	total := int(d.Seconds() * float64(rate))
	for i := range total {
		if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); wait > 0 {
			time.Sleep(wait)
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		default:
			rec.add(sample{unsent: true})
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			rec.add(timed(ctx, i, fn))
		})
	}
	wg.Wait()
	return rec
}

// progress prints one line on stderr, rewritten every half second, until stop is called.
func progress(name string, d time.Duration, rec *recorder) (stop func()) {
	if fi, err := os.Stderr.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		// Not a terminal: one line per scenario instead of a line rewritten in place.
		fmt.Fprintf(os.Stderr, "load: %s (%s)\n", name, d)
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(os.Stderr, "\r\033[K")
				return
			case <-t.C:
				el := time.Since(start)
				n := rec.count.Load()
				fmt.Fprintf(os.Stderr, "\r\033[K%-28s %4.1fs/%-4s %8d requests %7.0f/s %6d errors",
					name, el.Seconds(), d.Round(time.Second), n, float64(n)/el.Seconds(), rec.errs.Load())
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// stats summarises a scenario's samples.
type stats struct {
	Requests int            `json:"requests"`
	Seconds  float64        `json:"seconds"`
	RPS      float64        `json:"rps"`
	P50      float64        `json:"p50_ms"`
	P90      float64        `json:"p90_ms"`
	P99      float64        `json:"p99_ms"`
	Max      float64        `json:"max_ms"`
	Outcomes map[string]int `json:"outcomes"` // "200", "409 COMMAND_IN_FLIGHT", "no answer"
}

func summarise(samples []sample, elapsed time.Duration, keep func(sample) bool) stats {
	return summariseBy(samples, elapsed, keep, func(s sample) time.Duration { return s.latency })
}

// summariseBy is summarise with the latency taken by of (the whole or the wire time).
func summariseBy(samples []sample, elapsed time.Duration, keep func(sample) bool, of func(sample) time.Duration) stats {
	st := stats{Outcomes: map[string]int{}, Seconds: elapsed.Seconds()}
	var lat []time.Duration
	for _, s := range samples {
		key := strconv.Itoa(s.status)
		switch {
		case s.unsent:
			key = "not sent (generator saturated)"
		case s.failed:
			key = "no answer"
		case s.code != "":
			key += " " + s.code
		}
		st.Outcomes[key]++
		if !s.unsent && (keep == nil || keep(s)) {
			lat = append(lat, of(s))
		}
	}
	st.Requests = len(lat)
	if elapsed > 0 {
		st.RPS = float64(len(lat)) / elapsed.Seconds()
	}
	if len(lat) == 0 {
		return st
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		i := int(p * float64(len(lat)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	st.P50, st.P90, st.P99, st.Max = q(0.5), q(0.9), q(0.99), float64(lat[len(lat)-1].Microseconds())/1000
	return st
}
