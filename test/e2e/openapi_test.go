package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	openapi "github.com/betterkey/backend/api"
)

// Every response the suite gets from the REST API is held to api/openapi.yaml: its status is
// documented for the operation, and its headers and body match the documented schema. A request
// the document has no operation for is fine only when the server refused it (an unknown route,
// a wrong method, a path trick); a success there is a gap in the document.
var (
	contractOnce      sync.Once
	contract          validator.Validator
	contractErr       error
	contractMu        sync.Mutex // the validator is not documented as safe for concurrent use
	contractValidated atomic.Int64
)

func loadContract() {
	doc, err := libopenapi.NewDocument(openapi.YAML())
	if err != nil {
		contractErr = err
		return
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		contractErr = fmt.Errorf("openapi document: %v", errs)
		return
	}
	if ok, errs := v.ValidateDocument(); !ok {
		contractErr = fmt.Errorf("openapi document is not valid: %v", errs)
		return
	}
	contract = v
}

// checkContract validates one REST response (raw is its body, already read).
func checkContract(t testing.TB, req *http.Request, res *http.Response, raw []byte) {
	t.Helper()
	p := req.URL.Path
	if !strings.HasPrefix(p, "/v1/") && p != "/healthz" && p != "/readyz" {
		return // the simulators and the operators' endpoints are not the app's API
	}
	if path.Clean(p) != p {
		return // a path trick, refused before any route (404): the document names canonical paths
	}
	contractOnce.Do(loadContract)
	if contractErr != nil {
		t.Fatal(contractErr)
	}
	copied := *res
	copied.Body = io.NopCloser(bytes.NewReader(raw))
	contractMu.Lock()
	ok, errs := contract.ValidateHttpResponse(req, &copied)
	contractMu.Unlock()
	if ok {
		contractValidated.Add(1)
		return
	}
	var msgs []string
	for _, e := range errs {
		if (e.IsPathMissingError() || e.IsOperationMissingError()) && res.StatusCode >= 400 {
			return // refused before any documented operation: nothing to hold it to
		}
		msg := e.Message + ": " + e.Reason
		for _, se := range e.SchemaValidationErrors {
			msg += "; " + se.FieldPath + ": " + se.Reason
		}
		msgs = append(msgs, msg)
	}
	t.Errorf("%s %s → %d does not match api/openapi.yaml: %s\nbody: %.400s", req.Method, req.URL.Path, res.StatusCode, strings.Join(msgs, " | "), raw)
}
