package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// metrics scrapes the admin listener's /metrics, as Prometheus does.
func (e *env) metrics() response {
	e.t.Helper()
	return e.get(e.servers.AdminURL()+"/metrics", "")
}

// metricSum adds the value of one metric series (name and labels, as exposed) across replicas.
func metricSum(series string, replicas ...*env) float64 {
	sum := 0.0
	for _, e := range replicas {
		for line := range strings.SplitSeq(e.metrics().raw, "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok {
				n, _ := strconv.ParseFloat(v, 64)
				sum += n
			}
		}
	}
	return sum
}

// get is a plain GET of url, with an optional bearer token.
func (e *env) get(url, bearer string) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.exchange(req, bearer)
}

// /metrics is an operator's endpoint: on the admin listener, not the app's, and it counts errors
// by stable code and shows dependency health and the drain.
func TestMetricsAreOnTheAdminListener(t *testing.T) {
	e := startServer(t)
	if r := e.do("GET", "/metrics", nil, ""); r.status != http.StatusNotFound {
		t.Fatalf("public /metrics: %d, want 404", r.status)
	}
	e.expect(e.do("GET", "/v1/me", nil, "not-a-token"), http.StatusUnauthorized, "INVALID_ACCESS_TOKEN")
	e.expect(e.do("GET", "/readyz", nil, ""), http.StatusOK, "")
	m := e.metrics()
	if m.status != http.StatusOK {
		t.Fatalf("admin /metrics: %d", m.status)
	}
	for _, want := range []string{
		`betterkey_http_errors_total{code="INVALID_ACCESS_TOKEN",route="/v1/me",status="401"} 1`,
		`betterkey_http_request_duration_seconds_count{method="GET",route="/v1/me",status="401"} 1`,
		`betterkey_dependency_up{dependency="database"} 1`,
		`betterkey_dependency_up{dependency="cipher"} 1`,
		`betterkey_draining 0`,
		`betterkey_http_admission_in_use{pool="shared"} 0`,
		`betterkey_http_admission_in_use{pool="queued"} 0`,
	} {
		if !strings.Contains(m.raw, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// With one listener for both, /metrics needs an admin token like the admin API.
func TestMetricsOnASharedListenerNeedAnAdminToken(t *testing.T) {
	addr := freeAddr(t)
	e := startOn(t, newInfra(t, "http://"+addr+"/v1/smartcar/callback"), addr,
		func(v map[string]string) { v["BETTERKEY_ADMIN_ADDR"] = addr })
	if r := e.get(e.servers.HTTPURL()+"/metrics", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("without a token: %d, want 401", r.status)
	}
	if r := e.get(e.servers.HTTPURL()+"/metrics", "wrong-token-wrong-token-wrong-token"); r.status != http.StatusUnauthorized {
		t.Fatalf("with a wrong token: %d, want 401", r.status)
	}
	if r := e.get(e.servers.HTTPURL()+"/metrics", canaryAdminToken); r.status != http.StatusOK || !strings.Contains(r.raw, "betterkey_draining") {
		t.Fatalf("with the admin token: %d", r.status)
	}
}
