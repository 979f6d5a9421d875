package memory_test

import (
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

func TestConnectionsContract(t *testing.T) {
	contract.ConnectionStore(t, func(*testing.T) (ports.ConnectionStore, ports.UserStore) {
		return memory.NewConnections(memory.NewSealedSecrets()), memory.NewUsers()
	})
}

// TestUpdateKeepsARewrapThatRanDuringIt mirrors the PostgreSQL adapter's test: a rewrap does not
// wait for Update's lock, and an Update that leaves the tokens alone must not write the old
// ciphertext back.
func TestUpdateKeepsARewrapThatRanDuringIt(t *testing.T) {
	secrets := memory.NewSealedSecrets()
	conns := memory.NewConnections(secrets)
	old, _ := domain.ParseSealed("test:v1:old")
	rewrapped, _ := domain.ParseSealed("test:v2:new")
	at := time.Now()
	c := domain.Connection{ID: domain.NewConnectionID(), UserID: domain.NewUserID(), SmartcarUserID: "sc-user",
		Status: domain.ConnectionActive, Tokens: old, AccessExpiresAt: at, RefreshExpiresAt: at, CreatedAt: at, UpdatedAt: at}
	v := domain.Vehicle{ID: domain.NewVehicleID(), SmartcarID: "sc-vehicle", CreatedAt: at}
	if _, err := conns.SaveGrant(t.Context(), c, []domain.Vehicle{v}); err != nil {
		t.Fatalf("SaveGrant: %v", err)
	}
	_, err := conns.Update(t.Context(), c.ID, func(x *domain.Connection) error {
		if ok, err := secrets.Replace(t.Context(), []ports.SecretSwap{{Binding: x.TokenBinding(), Old: x.Tokens, Replacement: rewrapped}}); err != nil || !ok[0] {
			t.Errorf("Replace during Update = %v, %v; want [true], nil", ok, err)
		}
		x.Status = domain.ConnectionNeedsReauth
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	got, err := conns.Get(t.Context(), c.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Tokens.Ciphertext() != rewrapped.Ciphertext() || got.Status != domain.ConnectionNeedsReauth {
		t.Errorf("after Update = %v %s, want the rewrapped tokens and needs_reauth", got.Tokens, got.Status)
	}
}
