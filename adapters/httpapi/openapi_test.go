package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	openapi "github.com/betterkey/backend/api"
	"github.com/betterkey/backend/app/webhook"
)

// The router and the OpenAPI document agree in both directions: every route is documented, and
// every documented operation is a route. HEAD is GET without a body on every read, so it is left
// out of both sides.
func TestRouterMatchesTheOpenAPIDocument(t *testing.T) {
	doc, err := openapi.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d.OpenAPI, "3.1.") {
		t.Fatalf("openapi %q, want 3.1.x", d.OpenAPI)
	}
	var documented []string
	for path, ops := range d.Paths {
		for method := range ops {
			if method != "parameters" {
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	// Routes are registered whatever the services behind them; the webhook routes need a service.
	h, err := New(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry(), Webhooks: &webhook.Service{}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`:(\w+)`)
	var routed []string
	for _, r := range h.Routes() {
		if r.Method != http.MethodHead {
			routed = append(routed, r.Method+" "+param.ReplaceAllString(r.Path, "{$1}"))
		}
	}
	slices.Sort(documented)
	slices.Sort(routed)
	for _, r := range routed {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in api/openapi.yaml", r)
		}
	}
	for _, o := range documented {
		if !slices.Contains(routed, o) {
			t.Errorf("api/openapi.yaml documents %s, which no route serves", o)
		}
	}
}

// The document is served as JSON, exactly as embedded.
func TestOpenAPIDocumentIsServed(t *testing.T) {
	srv := newTestServer(t, Options{})
	res, err := http.Get(srv.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	want, _ := openapi.JSON()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" || string(body) != string(want) {
		t.Fatalf("GET /v1/openapi.json: %d %s, %d bytes", res.StatusCode, res.Header.Get("Content-Type"), len(body))
	}
}
