package memory_test

import (
	"testing"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

func TestSessionsContract(t *testing.T) {
	contract.SessionStore(t, func(*testing.T) (ports.SessionStore, ports.UserStore) {
		return memory.NewSessions(), memory.NewUsers()
	})
}
