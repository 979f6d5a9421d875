package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// leakScan collects, from every exchange of one server, the credentials that crossed the wire
// (bearer tokens sent, tokens issued, the Connect code, state and link of a callback) and checks
// at the end of the test that none of them reached that server's logs. It runs under every test
// of the suite, so every flow is scanned, not only the canary tests'.
type leakScan struct {
	mu      sync.Mutex
	secrets map[string]bool
}

// minSecret skips the short made-up values some tests send as tokens ("x.y.z"), which could
// appear in a log line by coincidence.
const minSecret = 16

func (l *leakScan) add(values ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.secrets == nil {
		l.secrets = map[string]bool{}
	}
	for _, v := range values {
		if len(v) >= minSecret {
			l.secrets[v] = true
		}
	}
}

// observe records what req and its answer carry.
func (l *leakScan) observe(req *http.Request, res *http.Response, raw []byte) {
	if token, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok {
		l.add(token)
	}
	if q := req.URL.Query(); req.URL.Path == "/v1/smartcar/callback" {
		l.add(q.Get("code"), q.Get("state"))
	}
	if loc, err := url.Parse(res.Header.Get("Location")); err == nil && loc.Scheme == "betterkey" {
		l.add(loc.Query().Get("link"))
	}
	var body map[string]any
	if json.Unmarshal(raw, &body) == nil {
		for _, k := range []string{"access_token", "refresh_token", "nonce", "link"} {
			if s, ok := body[k].(string); ok {
				l.add(s)
			}
		}
	}
}

// check fails t for every collected secret found in logs.
func (l *leakScan) check(t testing.TB, logs string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.secrets {
		if strings.Contains(logs, s) {
			t.Errorf("a credential of %d bytes that crossed the wire appears in the server's logs", len(s))
		}
	}
}

// errorRecorder is a testing.TB that only counts Errorf calls.
type errorRecorder struct {
	testing.TB
	errors int
}

func (r *errorRecorder) Errorf(string, ...any) { r.errors++ }

// The scan finds what it collected, and only that.
func TestLeakScanFindsACredential(t *testing.T) {
	var l leakScan
	req, _ := http.NewRequest(http.MethodGet, "http://x/v1/smartcar/callback?code=code-0123456789abcdef&state=st", nil)
	req.Header.Set("Authorization", "Bearer bearer-0123456789abcdef")
	res := &http.Response{Header: http.Header{"Location": {"betterkey://vehicles/connected?link=link-0123456789abcdef"}}}
	l.observe(req, res, []byte(`{"access_token":"access-0123456789abcdef","expires_at":"2026-12-07T12:00:00Z"}`))
	for _, leaked := range []string{"bearer-0123456789abcdef", "code-0123456789abcdef", "link-0123456789abcdef", "access-0123456789abcdef"} {
		r := &errorRecorder{TB: t}
		l.check(r, `{"msg":"request","x":"`+leaked+`"}`)
		if r.errors != 1 {
			t.Errorf("a log line with %s: %d findings, want 1", leaked, r.errors)
		}
	}
	r := &errorRecorder{TB: t}
	l.check(r, `{"msg":"request","state":"st","expires_at":"2026-12-07T12:00:00Z"}`)
	if r.errors != 0 {
		t.Errorf("a clean log line: %d findings", r.errors)
	}
}
