package memory_test

import (
	"testing"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

func TestWebhookInboxContract(t *testing.T) {
	inbox := memory.NewWebhookInbox() // one shared store, as the database suites share one database
	contract.WebhookInbox(t, func(*testing.T) ports.WebhookInbox { return inbox })
}
