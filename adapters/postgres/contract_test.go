package postgres_test

import (
	"testing"

	"github.com/betterkey/backend/adapters/postgres"
	"github.com/betterkey/backend/adapters/postgres/pgtest"
	"github.com/betterkey/backend/ports"
	"github.com/betterkey/backend/test/contract"
)

// engine is a database the stores run on, opened fresh and migrated for one test.
type engine struct {
	name string
	open func(testing.TB) *postgres.DB
}

// engines lists the databases every suite runs on: PostgreSQL as in production, and the SQLite
// file of the first run. Each test function opens its own database, shared by its subtests.
func engines() []engine {
	return []engine{{"PostgreSQL", pgtest.Open}, {"SQLite", pgtest.OpenSQLite}}
}

func TestUsersContract(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			contract.UserStore(t, func(*testing.T) ports.UserStore { return postgres.NewUsers(db) })
		})
	}
}

func TestSessionsContract(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			contract.SessionStore(t, func(*testing.T) (ports.SessionStore, ports.UserStore) {
				return postgres.NewSessions(db), postgres.NewUsers(db)
			})
		})
	}
}

func TestNoncesContract(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			contract.NonceStore(t, func(*testing.T) ports.NonceStore { return postgres.NewNonces(db) })
		})
	}
}

func TestConnectionsContract(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			contract.ConnectionStore(t, func(*testing.T) (ports.ConnectionStore, ports.UserStore) {
				return postgres.NewConnections(db), postgres.NewUsers(db)
			})
		})
	}
}

func TestConnectStatesContract(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			contract.ConnectStateStore(t, func(*testing.T) (ports.ConnectStateStore, ports.UserStore) {
				return postgres.NewConnectStates(db), postgres.NewUsers(db)
			})
		})
	}
}

func TestSealedSecretsContract(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			contract.SealedSecretStore(t, func(*testing.T) (ports.SealedSecretStore, ports.ConnectionStore, ports.UserStore) {
				return postgres.NewSealedSecrets(db), postgres.NewConnections(db), postgres.NewUsers(db)
			})
		})
	}
}

func TestAppleGrantsContract(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			contract.AppleGrantStore(t, func(*testing.T) (ports.AppleGrantStore, ports.UserStore, ports.SealedSecretStore) {
				return postgres.NewAppleGrants(db), postgres.NewUsers(db), postgres.NewSealedSecrets(db)
			})
		})
	}
}

func TestSigningKeysContract(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			db := e.open(t)
			contract.SigningKeyStore(t, postgres.NewSigningKeys(db), postgres.NewSealedSecrets(db))
		})
	}
}
