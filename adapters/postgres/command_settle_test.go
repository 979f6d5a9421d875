package postgres_test

import (
	"testing"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

func TestCommandSettlerContract(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			contract.CommandSettler(t, func(*testing.T) (contract.SettlingCommandStore, ports.ConnectionStore, ports.UserStore) {
				return postgres.NewCommands(db), postgres.NewConnections(db), postgres.NewUsers(db)
			})
		})
	}
}
