package memory_test

import (
	"testing"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

func TestCommandsContract(t *testing.T) {
	contract.CommandStore(t, func(*testing.T) (ports.CommandStore, ports.ConnectionStore, ports.UserStore) {
		conns := memory.NewConnections(memory.NewSealedSecrets())
		return memory.NewCommands(conns), conns, memory.NewUsers()
	})
}
