package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/adapters/postgres"
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
