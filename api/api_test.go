package api

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The README's API table and the document name the same operations, so the table a newcomer
// reads cannot drift from the document the app is generated from.
func TestReadmeTableMatchesTheDocument(t *testing.T) {
	j, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(j, &d); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for p, ops := range d.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^\| (GET|POST|DELETE) (/[^ |]+)(?: · (/[^ |]+))?`)
	var tabled []string
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		tabled = append(tabled, m[1]+" "+m[2])
		if m[3] != "" {
			tabled = append(tabled, m[1]+" "+m[3])
		}
	}
	slices.Sort(documented)
	slices.Sort(tabled)
	if !slices.Equal(documented, slices.Compact(tabled)) {
		t.Errorf("README's API table and api/openapi.yaml differ:\ntable:    %v\ndocument: %v", tabled, documented)
	}
}
