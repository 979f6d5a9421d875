package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/betterkey/backend/domain"
)

type decodeTarget struct {
	Action string `json:"action"`
	Count  int    `json:"count"`
	Nested struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	} `json:"nested"`
	Free map[string]any `json:"free"`
}

// Every body that two readers could read two ways is refused, naming the field.
func TestDecodeStrictRefusesAmbiguousBodies(t *testing.T) {
	refused := []struct {
		body, field string
	}{
		{`{"action":"lock","action":"unlock"}`, "action"},
		{`{"action":"lock","ACTION":"unlock"}`, "ACTION"},
		{`{"nested":{"name":"a","NaMe":"b"}}`, "nested.NaMe"},
		{"{\"nested\":{},\"ne\u017fted\":{}}", "ne\u017fted"}, // long s folds to s: the same field
		{strings.Repeat(`{"free":`, 40) + `1` + strings.Repeat(`}`, 40), strings.Repeat("free.", 31) + "free"},
		{`{"nested":{"tags":` + strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100) + `}}`, "nested.tags[][][][][][][][][][][][][][][][][][][][][][][][][][][][][][]"},
		{`{"nested":{"name":"a","name":"b"}}`, "nested.name"},
		{`{"free":{"k":1,"k":2}}`, "free.k"},
		{`{"nested":{"tags":[{"x":1,"x":2}]}}`, "nested.tags[].x"},
		{`{"action":"lock"} {"action":"unlock"}`, "body"},
		{`{"action":"lock"}garbage`, "body"},
		{`{"action":"lock"}]`, "body"},
		{`{"action":"a\u0000b"}`, "action"},
		{`{"nested":{"tags":["ok","a\u0000"]}}`, "nested.tags[]"},
		{`{"a\u0000":1}`, "body"},
		{"{\"action\":\"\xff\"}", "body"},
		{`{"action":"\ud800"}`, "action"},
		{`{"unknown":1}`, "unknown"},
		{`{"nested":{"unknown":1}}`, "unknown"}, // encoding/json names the member, not its path; every request body is flat
		{`{"count":"3"}`, "count"},
		{`{"action":3}`, "action"},
		{`{"nested":[]}`, "nested"},
		{`[]`, "body"},
		{`"lock"`, "body"},
		{`null`, "body"},
		{``, "body"},
		{`{"action":`, "action"},
		{`{"action":"lock",}`, "body"},
		{`{'action':'lock'}`, "body"},
	}
	for _, tt := range refused {
		var v decodeTarget
		err := decodeStrict([]byte(tt.body), &v, true)
		e := domain.AsError(err)
		if e == nil || e.Kind != domain.KindInvalid || e.Code != "VALIDATION_FAILED" {
			t.Errorf("%s: %v, want a VALIDATION_FAILED error", tt.body, err)
			continue
		}
		if !strings.HasPrefix(e.Msg, tt.field+": ") {
			t.Errorf("%s: %q, want it to name %q", tt.body, e.Msg, tt.field)
		}
	}
	var v decodeTarget
	if err := decodeStrict([]byte(` {"action":"lock","count":2,"nested":{"name":"é ✓","tags":["a","b"]},"free":{"x":[1,{"y":null}]}} `), &v, true); err != nil {
		t.Fatalf("a good body: %v", err)
	}
	if v.Action != "lock" || v.Count != 2 || v.Nested.Name != "é ✓" || len(v.Nested.Tags) != 2 {
		t.Fatalf("decoded %+v", v)
	}
	if err := decodeStrict([]byte(`{"action":"lock","added_by_vendor":1}`), &v, false); err != nil {
		t.Fatalf("a vendor's extra field: %v", err)
	}
	if err := decodeStrict([]byte(`{"action":"lock","action":"x"}`), &v, false); err == nil {
		t.Fatal("a vendor's duplicate name was accepted")
	}
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json": true, "application/json; charset=utf-8": true, "Application/JSON;charset=UTF-8": true,
		"": false, "text/plain": false, "application/xml": false, "application/json; charset=latin1": false,
		"application/json; boundary=x": false, "application/jsonx": false, "application/problem+json": false,
	} {
		if got := isJSON(ct); got != want {
			t.Errorf("isJSON(%q) = %v, want %v", ct, got, want)
		}
	}
}

// HTTP's own rules on the router: 405 with Allow, OPTIONS, HEAD, 415, no redirects, the bearer
// scheme in any case.
func TestHTTPSemantics(t *testing.T) {
	srv := newTestServer(t, Options{})
	h := CanonicalPaths(srv.Config.Handler)
	do := func(method, path, ct, body string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "http://api"+path, strings.NewReader(body))
		if body == "" {
			req = httptest.NewRequest(method, "http://api"+path, nil)
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	code := func(w *httptest.ResponseRecorder) string {
		b, _ := io.ReadAll(w.Result().Body)
		_, rest, _ := strings.Cut(string(b), `"code":"`)
		c, _, _ := strings.Cut(rest, `"`)
		return c
	}
	w := do("PUT", "/v1/auth/refresh", "application/json", `{}`)
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST, OPTIONS" || code(w) != "METHOD_NOT_ALLOWED" {
		t.Errorf("PUT on a POST route: %d, Allow %q, code %s", w.Code, w.Header().Get("Allow"), code(w))
	}
	w = do("OPTIONS", "/v1/me", "", "")
	if w.Code != http.StatusNoContent || !strings.Contains(w.Header().Get("Allow"), "GET") || !strings.Contains(w.Header().Get("Allow"), "HEAD") {
		t.Errorf("OPTIONS: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
	w = do("HEAD", "/healthz", "", "")
	if w.Code != http.StatusOK {
		t.Errorf("HEAD /healthz: %d", w.Code)
	}
	// The callback consumes its OAuth state, so a prefetching HEAD must not reach it.
	if w := do("HEAD", "/v1/smartcar/callback?code=c&state=s", "", ""); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("HEAD on the Smartcar callback: %d, want 405", w.Code)
	}
	for _, ct := range []string{"", "text/plain", "application/xml", "application/x-www-form-urlencoded"} {
		if w := do("POST", "/v1/auth/refresh", ct, `{"refresh_token":"x"}`); w.Code != http.StatusUnsupportedMediaType || code(w) != "UNSUPPORTED_MEDIA_TYPE" {
			t.Errorf("Content-Type %q: %d %s", ct, w.Code, code(w))
		}
	}
	for path, want := range map[string]int{
		"/v1/me/sessions/../me": http.StatusNotFound, "/v1//me": http.StatusNotFound, "/v1/./me": http.StatusNotFound,
		"/v1/me/": http.StatusNotFound, "/v1/vehicles/a%2Fb": http.StatusNotFound, "/v1/vehicles/a%00b": http.StatusBadRequest,
		"/v1/vehicles/a%0Ab": http.StatusBadRequest,
	} {
		if w := do("DELETE", path, "", ""); w.Code != want || w.Header().Get("Location") != "" {
			t.Errorf("DELETE %s: %d (Location %q), want %d and no redirect", path, w.Code, w.Header().Get("Location"), want)
		}
	}
	for _, auth := range []string{"bearer x.y.z", "BEARER x.y.z", "Bearer x.y.z"} {
		// A well-formed credential in any case reaches the verifier, which refuses this one as
		// invalid, not as a malformed header.
		w := do("GET", "/v1/me", "", "", "Authorization", auth)
		if w.Code != http.StatusUnauthorized || code(w) != "INVALID_ACCESS_TOKEN" {
			t.Errorf("%q: %d %s, want 401 INVALID_ACCESS_TOKEN", auth, w.Code, code(w))
		}
	}
	for _, auth := range []string{"Bearer  x", "Basic eDp5", "Bearer x y", "Bearer"} {
		if w := do("GET", "/v1/me", "", "", "Authorization", auth); w.Code != http.StatusUnauthorized || code(w) != "UNAUTHENTICATED" {
			t.Errorf("%q: %d %s, want 401 UNAUTHENTICATED", auth, w.Code, code(w))
		}
	}
}
