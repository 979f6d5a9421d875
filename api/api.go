// Package api holds the OpenAPI 3.1 document of the REST API (openapi.yaml), the one description
// the server serves, the tests hold the router and every response to, and the app's client is
// generated from.
package api

import (
	_ "embed"
	"fmt"
	"sync"

	"github.com/goccy/go-yaml"
)

//go:embed openapi.yaml
var document []byte

// YAML is the document as written.
func YAML() []byte { return document }

var asJSON = sync.OnceValues(func() ([]byte, error) {
	j, err := yaml.YAMLToJSON(document)
	if err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	return j, nil
})

// JSON is the document as JSON, the form GET /v1/openapi.json serves.
func JSON() ([]byte, error) { return asJSON() }
