package memory_test

import (
	"testing"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

func TestUsersContract(t *testing.T) {
	contract.UserStore(t, func(*testing.T) ports.UserStore { return memory.NewUsers() })
}
