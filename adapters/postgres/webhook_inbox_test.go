package postgres_test

import (
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

func TestWebhookInboxContract(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			contract.WebhookInbox(t, func(*testing.T) ports.WebhookInbox { return postgres.NewWebhookInbox(db) })
		})
	}
}

// TestDeleteUserCascades proves what UserStore.Delete promises beyond the contract: the schema
// removes everything the account owns in the same statement, token sets included.
func TestDeleteUserCascades(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			ctx := t.Context()
			users, sessions, conns := postgres.NewUsers(db), postgres.NewSessions(db), postgres.NewConnections(db)
			states, secrets := postgres.NewConnectStates(db), postgres.NewSealedSecrets(db)
			at := time.Now().UTC().Truncate(time.Microsecond)
			var ids []domain.UserID
			for range 2 {
				u := domain.NewUser(domain.AppleIdentity{Issuer: "https://appleid.apple.com", Subject: domain.NewOpaqueToken().Reveal()}, at)
				if err := users.Create(ctx, u); err != nil {
					t.Fatal(err)
				}
				s := domain.NewSession(u.ID, "install", domain.DevicePhone, "", domain.HashToken(domain.NewOpaqueToken().Reveal()), at, domain.DefaultSessionLifetimes())
				if err := sessions.Create(ctx, s); err != nil {
					t.Fatal(err)
				}
				if _, err := sessions.Update(ctx, s.ID, func(x *domain.Session) error {
					x.Rotate(domain.HashToken(domain.NewOpaqueToken().Reveal()), at, domain.DefaultSessionLifetimes())
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				sealed, _ := domain.ParseSealed("test:v1:" + domain.NewOpaqueToken().Reveal())
				c := domain.Connection{ID: domain.NewConnectionID(), UserID: u.ID, SmartcarUserID: "sc-user", Status: domain.ConnectionActive,
					Tokens: sealed, AccessExpiresAt: at, RefreshExpiresAt: at, CreatedAt: at, UpdatedAt: at}
				if _, err := conns.SaveGrant(ctx, c, []domain.Vehicle{{ID: domain.NewVehicleID(), SmartcarID: "sc-car", CreatedAt: at}}); err != nil {
					t.Fatal(err)
				}
				if err := states.Put(ctx, domain.ConnectState{Hash: domain.HashToken(domain.NewOpaqueToken().Reveal()), UserID: u.ID, ExpiresAt: at.Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, u.ID)
			}
			if err := users.Delete(ctx, ids[0]); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			counts, err := secrets.KeyVersionCounts(ctx)
			if err != nil || counts[1] != 1 {
				t.Errorf("sealed secrets left = %v, %v; want only the other user's", counts, err)
			}
			if list, err := sessions.ListByUser(ctx, ids[0]); err != nil || len(list) != 0 {
				t.Errorf("sessions of the deleted user = %d, %v", len(list), err)
			}
			if list, err := conns.Vehicles(ctx, ids[0]); err != nil || len(list) != 0 {
				t.Errorf("vehicles of the deleted user = %d, %v", len(list), err)
			}
			if list, err := conns.VehiclesBySmartcarID(ctx, "sc-car", ""); err != nil || len(list) != 1 || list[0].UserID != ids[1] {
				t.Errorf("vehicles by smartcar id after delete = %v, %v; want the other user's only", list, err)
			}
			if list, err := sessions.ListByUser(ctx, ids[1]); err != nil || len(list) != 1 {
				t.Errorf("sessions of the other user = %d, %v", len(list), err)
			}
		})
	}
}
