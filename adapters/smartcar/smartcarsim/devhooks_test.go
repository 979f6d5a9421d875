package smartcarsim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
)

func TestDevDeliverPushesSignedLockState(t *testing.T) {
	var mu sync.Mutex
	var got []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("SC-Signature") != smartcarsim.Sign("token", body) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		got = append(got, string(body))
		mu.Unlock()
	}))
	defer receiver.Close()
	sim, err := smartcarsim.New(smartcarsim.Options{RedirectURIs: []string{"https://app.example/cb"}, ManagementToken: "token", SeedDefaultUser: true, WebhookURL: receiver.URL})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	res, err := http.Post(srv.URL+"/sim/webhooks/lock-state", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]int
	_ = json.NewDecoder(res.Body).Decode(&out)
	res.Body.Close()
	if out["vehicles"] != 2 || out["delivered"] != 2 || len(got) != 2 {
		t.Fatalf("answer %v, received %d", out, len(got))
	}
	if !strings.Contains(got[0], "IsLocked") && !strings.Contains(strings.ToLower(got[0]), "lock") {
		t.Fatalf("not a lock-state event: %s", got[0])
	}
}
