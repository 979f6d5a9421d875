package e2e

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/betterkey/backend/app/command"
	"github.com/betterkey/backend/domain"
)

// benchCarsPerOwner keeps every owner under the default lock limit (30 per 10 minutes), so the
// benchmark runs the production rate-limit path without tripping it.
const benchCarsPerOwner = 25

// BenchmarkCommandSubmit measures command admission through the use case on a running server:
// the ownership and link checks, then the store's transaction (per-user lock, guard claim, insert
// under the rate limit), for distinct vehicles, while the same server's worker sends every
// admitted command to the Smartcar simulator (zero latency) and records its end. Latencies are
// recorded per Submit; the p50 and p99 columns are computed from them, and sent/s is the rate at
// which the commands actually reached the simulator. Run with
// go test -run '^$' -bench CommandSubmit -benchtime 5000x ./test/e2e/
func BenchmarkCommandSubmit(b *testing.B) {
	e := startServer(b)
	var svc *command.Service
	e.replica(fx.Populate(&svc))
	type target struct {
		user    domain.UserID
		vehicle domain.VehicleID
	}
	var targets []target
	for len(targets) < b.N {
		s, cars := e.garage(benchCarsPerOwner)
		for _, c := range cars {
			targets = append(targets, target{domain.UserID(s.userID), domain.VehicleID(c.id)})
		}
	}
	sentBefore := e.sc.Stats().Commands
	latencies := make([]time.Duration, b.N)
	var next atomic.Int64
	b.SetParallelism(2)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			t0 := time.Now()
			_, err := svc.Submit(b.Context(), command.SubmitInput{UserID: targets[i].user, VehicleID: targets[i].vehicle, Action: "lock"})
			latencies[i] = time.Since(t0)
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commands/s")
	sorted := slices.Clone(latencies)
	slices.Sort(sorted)
	b.ReportMetric(float64(sorted[len(sorted)*50/100].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(sorted[min(len(sorted)-1, len(sorted)*99/100)].Microseconds())/1000, "p99-ms")
	deadline := time.Now().Add(time.Minute)
	for e.sc.Stats().Commands-sentBefore < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling a counter the simulator owns, not synchronising
	}
	sent := e.sc.Stats().Commands - sentBefore
	b.ReportMetric(float64(sent)/time.Since(start).Seconds(), "sent/s")
	if sent != int64(b.N) {
		b.Errorf("%d of %d commands reached the simulator", sent, b.N)
	}
}
