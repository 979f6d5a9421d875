package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

type report struct {
	Started         time.Time       `json:"started"`
	Command         string          `json:"command"`
	Machine         string          `json:"machine"`
	Idle            usage           `json:"idle"`
	StandardPeakRSS int64           `json:"standard_peak_rss_bytes"`
	Endpoints       []endpoint      `json:"endpoints"`
	Overload        *overloadReport `json:"overload,omitempty"`
	LongPolls       *longPollReport `json:"long_polls,omitempty"`
	Replicas        []replicaReport `json:"replicas,omitempty"`
}

// endpoint is one scenario on the server and, when it has one, on the raw floor.
type endpoint struct {
	Name   string    `json:"name"`
	Server measured  `json:"server"`
	Floor  *measured `json:"floor,omitempty"`
}

// check is one promise and what the run saw.
type check struct {
	Promise string `json:"promise"`
	Got     string `json:"got"`
	OK      bool   `json:"ok"`
}

type overloadReport struct {
	CapacityRPS float64          `json:"capacity_rps"`
	ArrivalRPS  int              `json:"arrival_rps"`
	Classes     map[string]stats `json:"classes"`
	Checks      []check          `json:"checks"`
}

type longPollReport struct {
	Polls           int     `json:"polls"`
	RSSIdle         int64   `json:"rss_idle_bytes"`
	RSSPolling      int64   `json:"rss_polling_bytes"`
	GoroutinesIdle  int     `json:"goroutines_idle"`
	GoroutinesPolls int     `json:"goroutines_polling"`
	Answered        int     `json:"answered_on_drain"`
	DrainSeconds    float64 `json:"seconds_from_sigterm_to_last_answer"`
	ExitSeconds     float64 `json:"seconds_from_sigterm_to_exit"`
	Checks          []check `json:"checks"`
}

type replicaReport struct {
	Replicas  int                 `json:"replicas"`
	Scenarios map[string]measured `json:"scenarios"`
}

func (r *report) broken() bool {
	var all []check
	if r.Overload != nil {
		all = append(all, r.Overload.Checks...)
	}
	if r.LongPolls != nil {
		all = append(all, r.LongPolls.Checks...)
	}
	for _, c := range all {
		if !c.OK {
			return true
		}
	}
	return false
}

func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/(1<<20)) }

func outcomes(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Load report\n\n%s · `go run ./test/load %s` · %s\n\n", r.Machine, r.Command, r.Started.Format(time.RFC3339))
	if r.Idle.RSSBytes > 0 {
		fmt.Fprintf(&b, "Server RSS at idle (after seeding): %s; peak during the standard scenarios: %s.\n\n", mb(r.Idle.RSSBytes), mb(r.StandardPeakRSS))
	}
	b.WriteString("| endpoint | rps | p50 ms | p90 ms | p99 ms | max ms | server CPU s | answers | floor rps | floor p99 ms | rps vs floor | p99 vs floor |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n")
	for _, e := range r.Endpoints {
		s := e.Server
		fmt.Fprintf(&b, "| %s | %.0f | %.1f | %.1f | %.1f | %.1f | %.2f | %s |", e.Name, s.RPS, s.P50, s.P90, s.P99, s.Max, s.CPUSeconds, outcomes(s.Outcomes))
		if f := e.Floor; f != nil && f.RPS > 0 && f.P99 > 0 {
			fmt.Fprintf(&b, " %.0f | %.1f | %.0f %% | %.2f× |\n", f.RPS, f.P99, 100*s.RPS/f.RPS, s.P99/f.P99)
		} else {
			b.WriteString(" | | | |\n")
		}
	}
	if o := r.Overload; o != nil {
		fmt.Fprintf(&b, "\n### Overload: %d arrivals/s of `GET /v1/vehicles` (%.1f× the %.0f/s measured), with locks, probes, admin and webhooks beside them\n\n",
			o.ArrivalRPS, float64(o.ArrivalRPS)/o.CapacityRPS, o.CapacityRPS)
		b.WriteString("| class | answered | p50 ms | p99 ms | max ms | answers |\n|---|---:|---:|---:|---:|---|\n")
		for _, k := range slices.Sorted(maps.Keys(o.Classes)) {
			s := o.Classes[k]
			fmt.Fprintf(&b, "| %s | %d | %.1f | %.1f | %.1f | %s |\n", k, s.Requests, s.P50, s.P99, s.Max, outcomes(s.Outcomes))
		}
		writeChecks(&b, o.Checks)
	}
	if l := r.LongPolls; l != nil {
		fmt.Fprintf(&b, "\n### %d concurrent command-status long-polls, then SIGTERM\n\n", l.Polls)
		fmt.Fprintf(&b, "RSS idle %s → %s while they wait; goroutines %d → %d; on SIGTERM %d answered within %.2f s, the process exited after %.2f s.\n",
			mb(l.RSSIdle), mb(l.RSSPolling), l.GoroutinesIdle, l.GoroutinesPolls, l.Answered, l.DrainSeconds, l.ExitSeconds)
		writeChecks(&b, l.Checks)
	}
	if len(r.Replicas) > 0 {
		b.WriteString("\n### Replicas on one PostgreSQL\n\n| replicas | scenario | rps | p50 ms | p99 ms | servers' CPU s | answers |\n|---:|---|---:|---:|---:|---:|---|\n")
		for _, rr := range r.Replicas {
			for _, k := range slices.Sorted(maps.Keys(rr.Scenarios)) {
				s := rr.Scenarios[k]
				fmt.Fprintf(&b, "| %d | %s | %.0f | %.1f | %.1f | %.2f | %s |\n", rr.Replicas, k, s.RPS, s.P50, s.P99, s.CPUSeconds, outcomes(s.Outcomes))
			}
		}
	}
	return b.String()
}

func writeChecks(b *strings.Builder, cs []check) {
	b.WriteString("\n")
	for _, c := range cs {
		mark := "PASS"
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(b, "- **%s** %s: %s\n", mark, c.Promise, c.Got)
	}
}
