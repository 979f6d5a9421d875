package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
)

// soakCars is how many linked cars the soak's events are about.
const soakCars = 500

// TestWebhookSoak delivers signed VEHICLE_STATE events over HTTP at a fixed rate, round robin to
// one or more replicas, and then reads from the inbox how long each event took from its arrival
// to its application (finished_at - received_at). It is a measurement when
// BETTERKEY_WEBHOOK_SOAK is set (a duration; _RATE events/s, default 1000; _REPLICAS, default 1):
// `go tool task bench:webhooks` prints ingest rate, apply rate and the lag's percentiles. Without
// it, it runs for a second at 200 events/s on two replicas as a check that every delivery is
// acknowledged and applied, none lost; nothing about its timing is asserted.
func TestWebhookSoak(t *testing.T) {
	duration, rate, replicas := time.Second, 200, 2
	measuring := os.Getenv("BETTERKEY_WEBHOOK_SOAK") != ""
	if measuring {
		var err error
		if duration, err = time.ParseDuration(os.Getenv("BETTERKEY_WEBHOOK_SOAK")); err != nil {
			t.Fatal(err)
		}
		rate, replicas = envInt(t, "BETTERKEY_WEBHOOK_SOAK_RATE", 1000), envInt(t, "BETTERKEY_WEBHOOK_SOAK_REPLICAS", 1)
	}
	quiet := func(v map[string]string) { v["BETTERKEY_LOG_LEVEL"] = "warn" }
	first := startServer(t, quiet)
	servers := []*env{first}
	for len(servers) < replicas {
		servers = append(servers, startOn(t, first.infra, freeAddr(t), quiet))
	}
	first.withDB(func(conn *pgx.Conn) { seedCars(t, conn, soakCars) })

	token := first.sc.ManagementToken()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}
	total := int(duration.Seconds() * float64(rate))
	work := make(chan int, 1024)
	var failed atomic.Int64
	var wg sync.WaitGroup
	base := time.Now().Add(-time.Hour)
	for range 64 {
		wg.Go(func() {
			for i := range work {
				at := base.Add(time.Duration(i) * time.Millisecond)
				lock := smartcarsim.LockSignal(i%2 == 0, at, at)
				ev := smartcarsim.NewVehicleStateEvent(smartcarsim.StateEvent{UserID: "sc-user",
					Vehicle: smartcarsim.VehicleRef{ID: fmt.Sprintf("car-%d", i%soakCars), Make: "TESLA", Model: "Model 3", Year: 2023},
					Signals: []smartcarsim.Signal{lock}, Triggers: []smartcarsim.Signal{lock}})
				body, err := ev.Encode(smartcarsim.DeliveryMeta{WebhookID: "wh", WebhookName: "BetterKey", DeliveryID: strconv.Itoa(i), DeliveredAt: at})
				if err != nil {
					t.Error(err)
					return
				}
				req, _ := http.NewRequest(http.MethodPost, servers[i%len(servers)].servers.HTTPURL()+"/v1/webhooks/smartcar", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("SC-Signature", smartcarsim.Sign(token, body))
				res, err := client.Do(req)
				if err != nil || res.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				if res != nil {
					_ = res.Body.Close()
				}
			}
		})
	}
	start := time.Now()
	for i := range total { // paced: event i goes at start + i/rate
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
			time.Sleep(d)
		}
		work <- i
	}
	close(work)
	wg.Wait()
	sent := time.Since(start)
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d deliveries were not acknowledged with 200", n, total)
	}
	deadline := time.Now().Add(duration + time.Minute)
	for first.scalar(`SELECT count(*) FROM webhook_inbox WHERE status = 'pending'`) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the inbox did not drain")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := first.scalar(`SELECT count(*) FROM webhook_inbox WHERE status = 'processed' AND outcome IN ('applied', 'stale')`); n != total {
		t.Fatalf("%d of %d events applied", n, total)
	}
	if !measuring {
		return
	}
	var p50, p90, p99, maxLag, span float64
	first.withDB(func(conn *pgx.Conn) {
		err := conn.QueryRow(t.Context(), `SELECT
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - received_at)),
			percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - received_at)),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - received_at)),
			max(extract(epoch FROM finished_at - received_at)),
			extract(epoch FROM max(finished_at) - min(received_at))
			FROM webhook_inbox WHERE source = 'smartcar'`).Scan(&p50, &p90, &p99, &maxLag, &span)
		if err != nil {
			t.Fatal(err)
		}
	})
	fmt.Printf("webhook soak: %d replicas, %d events in %.1fs: ingest %.0f/s, applied %.0f/s; lag p50 %.3fs p90 %.3fs p99 %.3fs max %.3fs\n",
		replicas, total, sent.Seconds(), float64(total)/sent.Seconds(), float64(total)/span, p50, p90, p99, maxLag)
}

// seedCars links n cars (Smartcar ids car-0 … car-n-1), each of its own user and connection,
// straight in the database: the soak measures the webhook path, not the Connect flow.
func seedCars(t *testing.T, conn *pgx.Conn, n int) {
	t.Helper()
	mustExec(t, conn, `INSERT INTO users (id, apple_issuer, apple_subject, created_at, updated_at)
		SELECT md5('soak-u'||i)::uuid, 'https://appleid.apple.com', 'soak-'||i, now(), now() FROM generate_series(0, $1 - 1) i`, n)
	mustExec(t, conn, `INSERT INTO connections (id, user_id, smartcar_user_id, status, scopes, access_expires_at, refresh_expires_at, created_at, updated_at)
		SELECT md5('soak-c'||i)::uuid, md5('soak-u'||i)::uuid, 'sc-user-'||i, 'active', 'control_security read_security',
			now() + interval '2 hours', now() + interval '60 days', now(), now() FROM generate_series(0, $1 - 1) i`, n)
	mustExec(t, conn, `INSERT INTO vehicles (id, user_id, connection_id, smartcar_id, make, model, year, created_at)
		SELECT md5('soak-v'||i)::uuid, md5('soak-u'||i)::uuid, md5('soak-c'||i)::uuid, 'car-'||i, 'TESLA', 'Model 3', 2023, now()
		FROM generate_series(0, $1 - 1) i`, n)
}

func envInt(t *testing.T, key string, def int) int {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s must be a positive integer", key)
	}
	return n
}
