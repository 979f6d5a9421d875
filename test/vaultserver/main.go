// Command vault is the HashiCorp Vault server, built from the Go module proxy so that the Vault
// transit adapter is tested against a real server on machines with no internet and no Docker.
//
// The vault module cannot be installed with "go install" because its go.mod carries replace
// directives; building its command package as a dependency of this small module is the recipe
// from shared/reference/vault-transit.md §3.2: vault v1.21.0 with the sdk v0.20.0 its go.mod
// requires (v1.21.4 does not compile against any tagged sdk). This module is separate from the
// backend's so the ~500 modules Vault needs never enter the backend's go.mod. Vault itself is
// BUSL-1.1 and is used here only as a test tool.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

// main mirrors github.com/hashicorp/vault's own main.go.
func main() {
	os.Exit(command.Run(os.Args[1:]))
}
