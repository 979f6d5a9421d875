package httpapi

import (
	"encoding/json"
	"net/http"
	"path"
	"strings"

	"github.com/betterkey/backend/adapters/requestid"
	"github.com/betterkey/backend/domain"
)

// CanonicalPaths refuses, before any router sees it, a path that a router would clean: "..",
// ".", "//" or control characters. net/http's ServeMux answers those with a redirect to the
// cleaned path, which turns DELETE /v1/me/sessions/../me into a request for another resource; an
// id is never a path, so such a request names nothing (404), and control characters are refused
// outright (400).
func CanonicalPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if strings.ContainsFunc(p, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
			writePlainProblem(w, r, problemFor(domain.Invalid("path", "must not contain control characters"), ""))
			return
		}
		if p != "*" && !canonical(p) {
			writePlainProblem(w, r, problemFor(errRouteNotFound, ""))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// canonical reports whether p is its own cleaned form (a trailing slash kept: it is a different
// route, refused by the router if it has none).
func canonical(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

// writePlainProblem writes p for a request no router has seen, with a request id of its own.
func writePlainProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	p.RequestID = requestid.Adopt(r.Header.Get(requestid.Header))
	w.Header().Set(requestid.Header, p.RequestID)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	body, _ := json.Marshal(p)
	_, _ = w.Write(body)
}
