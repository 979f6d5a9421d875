package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/postgres/pgtest"
	"github.com/betterkey/backend/adapters/smartcar"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/app/webhook"
	"github.com/betterkey/backend/domain"
)

// BenchmarkWebhookIngest measures what a Smartcar delivery costs before its 2xx: the HMAC over
// the raw body with both rotation secrets tried, the lenient decode, and the deduplicating
// insert into the inbox (one INSERT … ON CONFLICT DO NOTHING, committed). Every fourth delivery
// is a retry of an earlier event, as Smartcar's at-least-once delivery produces. Bodies are
// realistic VEHICLE_STATE events of about 1 KiB. Run with -bench WebhookIngest/PostgreSQL -cpu 2;
// ops/s is in the events/s column.
func BenchmarkWebhookIngest(b *testing.B) {
	for _, e := range engines() {
		b.Run(e.name, func(b *testing.B) {
			db := e.open(b)
			const token = "bench-management-token"
			events, err := smartcar.NewWebhooks([]domain.Secret{domain.NewSecret("rotated-in-token"), domain.NewSecret(token)})
			if err != nil {
				b.Fatal(err)
			}
			svc := webhook.New(webhook.Deps{Inbox: postgres.NewWebhookInbox(db), VehicleEvents: events,
				Connections: memory.NewConnections(nil), Users: memory.NewUsers(), Sessions: memory.NewSessions()}, webhook.Config{})
			at := time.Now()
			lock := smartcarsim.LockSignal(true, at, at)
			template := smartcarsim.NewVehicleStateEvent(smartcarsim.StateEvent{UserID: "3c3a4b4c-9f5e-4c8e-8d7a-1f2e3d4c5b6a",
				Vehicle:  smartcarsim.VehicleRef{ID: "36ab27d0-fd9d-4455-823a-ce30af709ffc", Make: "TESLA", Model: "Model 3", Year: 2023},
				Signals:  []smartcarsim.Signal{lock, {Code: "tractionbattery-stateofcharge", Name: "StateOfCharge", Group: "TractionBattery", Body: map[string]any{"unit": "percent", "value": 78}, OEMUpdatedAt: at, FetchedAt: at}},
				Triggers: []smartcarsim.Signal{lock}})
			proto, err := withoutEventID(template.Encode(smartcarsim.DeliveryMeta{WebhookID: "wh", WebhookName: "BetterKey", DeliveryID: "d", DeliveredAt: at}))
			if err != nil {
				b.Fatal(err)
			}
			var seq, stored atomic.Int64
			runParallel(b, "events/s", func(ctx context.Context) (func() error, error) {
				return func() error {
					n := seq.Add(1)
					id := n
					if n%4 == 0 {
						id = n - 1 // a retry of the previous event
					}
					body := []byte(strconv.FormatInt(id, 10))
					body = append(append(append([]byte(`{"eventId":"bench-`), body...), '"', ','), proto[len(`{`):]...)
					rec, err := svc.IngestSmartcar(ctx, body, smartcarsim.Sign(token, body))
					switch {
					case err != nil:
					case rec.Outcome == webhook.OutcomeStored:
						stored.Add(1)
					case rec.Outcome != webhook.OutcomeDuplicate:
						err = fmt.Errorf("ingest outcome %s", rec.Outcome)
					}
					return err
				}, nil
			})
			if n := seq.Load(); stored.Load() < n/2 {
				b.Fatalf("%d of %d deliveries stored a new event; the ids are not unique", stored.Load(), n)
			}
		})
	}
}

// withoutEventID drops the encoded event's eventId, so each benchmark delivery can put its own
// first.
func withoutEventID(body []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	delete(doc, "eventId")
	return json.Marshal(doc)
}

// benchApplyCars is how many cars the apply benchmark's events are about.
const benchApplyCars = 500

// BenchmarkWebhookApply measures the inbox worker: b.N VEHICLE_STATE events about
// benchApplyCars cars are stored before the timer starts, then processed batch by batch
// (claim, decode, find the vehicle, keep the newest lock state, look for unknown commands to
// settle, finish) until none is left: on one replica with one worker and with the default eight,
// and on PostgreSQL also on three replicas (three pools on one database, as three processes
// would have) with one worker each, which claim with SKIP LOCKED and split the backlog. ops/s is
// in the events/s column. Run with -bench WebhookApply -benchtime 20000x -cpu 2.
func BenchmarkWebhookApply(b *testing.B) {
	type setup struct {
		name              string
		open              func(testing.TB) []*postgres.DB
		replicas, workers int
	}
	sqlite := func(tb testing.TB) []*postgres.DB { return []*postgres.DB{pgtest.OpenSQLite(tb)} }
	pg := func(n int) func(testing.TB) []*postgres.DB {
		return func(tb testing.TB) []*postgres.DB {
			url := pgtest.NewURL(tb)
			var out []*postgres.DB
			for range n {
				out = append(out, pgtest.OpenURL(tb, url))
			}
			return out
		}
	}
	for _, c := range []setup{
		{"PostgreSQL/workers=1", pg(1), 1, 1}, {"PostgreSQL/workers=8", pg(1), 1, 8},
		{"PostgreSQL/replicas=3/workers=1", pg(3), 3, 1},
		{"SQLite/workers=1", sqlite, 1, 1}, {"SQLite/workers=8", sqlite, 1, 8},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := b.Context()
			dbs := c.open(b)
			conns := postgres.NewConnections(dbs[0])
			for i := range benchApplyCars / 2 {
				if _, err := seedVehicleOwner(ctx, dbs[0], conns, fmt.Sprintf("car-%d", 2*i), fmt.Sprintf("car-%d", 2*i+1)); err != nil {
					b.Fatal(err)
				}
			}
			events, err := smartcar.NewWebhooks([]domain.Secret{domain.NewSecret("bench-management-token")})
			if err != nil {
				b.Fatal(err)
			}
			inbox := postgres.NewWebhookInbox(dbs[0])
			base := time.Now().Add(-time.Hour)
			for i := range b.N {
				at := base.Add(time.Duration(i) * time.Millisecond)
				lock := smartcarsim.LockSignal(i%2 == 0, at, at)
				ev := smartcarsim.NewVehicleStateEvent(smartcarsim.StateEvent{UserID: "sc-user",
					Vehicle: smartcarsim.VehicleRef{ID: fmt.Sprintf("car-%d", i%benchApplyCars), Make: "TESLA", Model: "Model 3", Year: 2023},
					Signals: []smartcarsim.Signal{lock}, Triggers: []smartcarsim.Signal{lock}})
				body, err := ev.Encode(smartcarsim.DeliveryMeta{WebhookID: "wh", WebhookName: "BetterKey", DeliveryID: "d", DeliveredAt: at})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := inbox.Add(ctx, domain.InboxEvent{Source: domain.SourceSmartcar, ID: fmt.Sprintf("ev-%d", i),
					Type: "VEHICLE_STATE", Payload: body, Status: domain.InboxPending, ReceivedAt: at, AvailableAt: at}); err != nil {
					b.Fatal(err)
				}
			}
			var applied atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for _, db := range dbs[:c.replicas] {
				svc := webhook.New(webhook.Deps{Inbox: postgres.NewWebhookInbox(db), VehicleEvents: events,
					Connections: postgres.NewConnections(db), Commands: postgres.NewCommands(db), Users: postgres.NewUsers(db),
					Sessions: postgres.NewSessions(db)}, webhook.Config{Workers: c.workers})
				wg.Go(func() {
					for {
						rs, err := svc.ProcessDue(ctx)
						if err != nil {
							b.Error(err)
							return
						}
						if len(rs) == 0 {
							return
						}
						for _, r := range rs {
							if r.Outcome != webhook.OutcomeApplied && r.Outcome != webhook.OutcomeStale {
								b.Errorf("event %s: %s (%v)", r.ID, r.Outcome, r.Err)
								return
							}
							applied.Add(1)
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if n := applied.Load(); n != int64(b.N) {
				b.Fatalf("processed %d of %d events", n, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
