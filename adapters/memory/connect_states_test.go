package memory_test

import (
	"testing"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

func TestConnectStatesContract(t *testing.T) {
	contract.ConnectStateStore(t, func(*testing.T) (ports.ConnectStateStore, ports.UserStore) {
		return memory.NewConnectStates(), memory.NewUsers()
	})
}
