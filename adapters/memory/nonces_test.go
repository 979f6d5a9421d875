package memory_test

import (
	"testing"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

func TestNoncesContract(t *testing.T) {
	contract.NonceStore(t, func(*testing.T) ports.NonceStore { return memory.NewNonces() })
}
