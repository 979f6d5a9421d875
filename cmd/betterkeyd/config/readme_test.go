package config_test

import (
	"os"
	"strings"
	"testing"
)

// Every setting the server prints at startup is documented in the README's configuration table,
// so an operator never meets a setting the README does not explain.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	c, err := load(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range c.Fields() {
		// A row may name related settings by their suffix: `BETTERKEY_COMMAND_TTL` · `_COMMAND_LEASE`.
		short := "`_" + strings.TrimPrefix(kv[0], "BETTERKEY_") + "`"
		if !strings.Contains(string(readme), "| `"+kv[0]+"`") && !strings.Contains(string(readme), short) {
			t.Errorf("README: no configuration row for %s", kv[0])
		}
	}
}
