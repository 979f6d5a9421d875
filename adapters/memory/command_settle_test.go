package memory_test

import (
	"testing"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

func TestCommandSettlerContract(t *testing.T) {
	contract.CommandSettler(t, func(*testing.T) (contract.SettlingCommandStore, ports.ConnectionStore, ports.UserStore) {
		conns := memory.NewConnections(memory.NewSealedSecrets())
		return memory.NewCommands(conns), conns, memory.NewUsers()
	})
}
