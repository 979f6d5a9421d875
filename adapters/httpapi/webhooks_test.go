package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/adapters/smartcar"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/app/webhook"
	"github.com/betterkey/backend/domain"
)

const hookSecret = "CANARY-HOOK-SECRET"

// acceptAll stands in for Apple's verifier: "valid:<jti>" is a consent-revoked notification for
// an unknown subject, anything else is invalid.
type acceptAll struct{}

func (acceptAll) VerifyNotification(_ context.Context, payload string) (domain.AppleNotification, error) {
	jti, ok := strings.CutPrefix(payload, "valid:")
	if !ok {
		return domain.AppleNotification{}, domain.ErrInvalidNotification
	}
	return domain.AppleNotification{ID: jti, Issuer: "https://appleid.apple.com",
		Event: domain.AppleEvent{Type: domain.AppleConsentRevoked, Subject: "nobody"}}, nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type hookEnv struct {
	srv   *httptest.Server
	inbox *memory.WebhookInbox
	reg   *prometheus.Registry
	logs  *lockedBuffer
}

func newHookEnv(t *testing.T, opts Options) *hookEnv {
	t.Helper()
	events, err := smartcar.NewWebhooks([]domain.Secret{domain.NewSecret(hookSecret)})
	if err != nil {
		t.Fatal(err)
	}
	e := &hookEnv{inbox: memory.NewWebhookInbox(), reg: prometheus.NewRegistry(), logs: &lockedBuffer{}}
	svc := webhook.New(webhook.Deps{Inbox: e.inbox, VehicleEvents: events, Notifications: acceptAll{},
		Connections: memory.NewConnections(nil), Users: memory.NewUsers(), Sessions: memory.NewSessions()}, webhook.Config{})
	h, err := New(Deps{Webhooks: svc, Log: slog.New(slog.NewJSONHandler(e.logs, nil)), Registry: e.reg}, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// post sends body to path with the headers and returns the status and body.
func (e *hookEnv) post(t *testing.T, path string, body io.Reader, headers map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(raw), res.Header
}

// counter reads one series of a counter from the registry.
func (e *hookEnv) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// stored counts (and removes) every event in the inbox, pending or final.
func (e *hookEnv) stored(t *testing.T) int {
	t.Helper()
	far := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	pending, err := e.inbox.Claim(t.Context(), far, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	final := 0
	for _, src := range []domain.EventSource{domain.SourceSmartcar, domain.SourceApple, domain.SourceAccount} {
		n, err := e.inbox.DeleteFinished(t.Context(), src, far, 1000)
		if err != nil {
			t.Fatal(err)
		}
		final += n
	}
	return len(pending) + final
}

func TestSmartcarWebhookRefusals(t *testing.T) {
	e := newHookEnv(t, Options{})
	body := []byte(`{"eventId":"6c1e7cba-33a2-4d86-9b68-4a2b8a8bd0a4","eventType":"VEHICLE_STATE","vehicleId":"v1","data":{}}`)
	good := smartcarsim.Sign(hookSecret, body)
	changed := bytes.Replace(body, []byte("v1"), []byte("v2"), 1)
	big := bytes.Repeat([]byte(" "), maxWebhookBody+1)
	for name, tc := range map[string]struct {
		body    io.Reader
		sig     string
		status  int
		badSigs float64
	}{
		"missing signature":             {bytes.NewReader(body), "", http.StatusUnauthorized, 1},
		"wrong secret":                  {bytes.NewReader(body), smartcarsim.Sign("other", body), http.StatusUnauthorized, 1},
		"body changed by one byte":      {bytes.NewReader(changed), good, http.StatusUnauthorized, 1},
		"signature of a different body": {bytes.NewReader(body), smartcarsim.Sign(hookSecret, []byte("{}")), http.StatusUnauthorized, 1},
		"uppercase hex":                 {bytes.NewReader(body), strings.ToUpper(good), http.StatusUnauthorized, 1},
		"truncated hex":                 {bytes.NewReader(body), good[:63], http.StatusUnauthorized, 1},
		"empty body":                    {bytes.NewReader(nil), smartcarsim.Sign(hookSecret, nil), http.StatusBadRequest, 0},
		"over the cap":                  {bytes.NewReader(big), smartcarsim.Sign(hookSecret, big), http.StatusRequestEntityTooLarge, 0},
		"over the cap, no length":       {io.MultiReader(bytes.NewReader(big)), smartcarsim.Sign(hookSecret, big), http.StatusRequestEntityTooLarge, 0},
	} {
		t.Run(name, func(t *testing.T) {
			before := e.counter(t, "betterkey_webhook_signature_failures_total", map[string]string{"source": "smartcar"})
			status, raw, header := e.post(t, smartcarWebhookPath, tc.body, map[string]string{"SC-Signature": tc.sig})
			if status != tc.status || header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("got %d %s, want %d problem+json", status, raw, tc.status)
			}
			if got := e.counter(t, "betterkey_webhook_signature_failures_total", map[string]string{"source": "smartcar"}) - before; got != tc.badSigs {
				t.Fatalf("signature failures counted %v, want %v", got, tc.badSigs)
			}
			if n := e.stored(t); n != 0 {
				t.Fatalf("%d events stored", n)
			}
		})
	}
	if logs := e.logs.String(); strings.Contains(logs, good[:16]) || strings.Contains(logs, hookSecret) {
		t.Fatal("a signature or the secret reached the logs")
	}
}

func TestSmartcarWebhookAcceptsUnderItsOwnCap(t *testing.T) {
	e := newHookEnv(t, Options{MaxBodyBytes: 1024}) // the app's cap is far below the webhook's
	body := []byte(`{"eventId":"e-big","eventType":"VEHICLE_STATE","data":{"pad":"` + strings.Repeat("x", 100<<10) + `"}}`)
	status, raw, header := e.post(t, smartcarWebhookPath, bytes.NewReader(body), map[string]string{"SC-Signature": smartcarsim.Sign(hookSecret, body)})
	if status != http.StatusOK || header.Get("X-Request-Id") == "" {
		t.Fatalf("got %d %s (request id %q)", status, raw, header.Get("X-Request-Id"))
	}
	if !strings.Contains(e.logs.String(), `"route":"/v1/webhooks/smartcar"`) {
		t.Fatal("the webhook route skipped the access log")
	}
	if got := e.counter(t, "betterkey_webhook_deliveries_total", map[string]string{"source": "smartcar", "outcome": "stored"}); got != 1 {
		t.Fatalf("stored deliveries counted %v", got)
	}
	malformed := []byte(`{"eventId":`)
	status, _, _ = e.post(t, smartcarWebhookPath, bytes.NewReader(malformed), map[string]string{"SC-Signature": smartcarsim.Sign(hookSecret, malformed)})
	if got := e.counter(t, "betterkey_webhook_deliveries_total", map[string]string{"source": "smartcar", "outcome": "poison"}); status != http.StatusOK || got != 1 {
		t.Fatalf("malformed body with a valid signature: %d, poison counted %v", status, got)
	}

	challenge := smartcarsim.NewChallenge()
	verify, _ := smartcarsim.NewVerifyEvent(challenge).Encode(smartcarsim.DeliveryMeta{})
	status, raw, header = e.post(t, smartcarWebhookPath, bytes.NewReader(verify), map[string]string{"SC-Signature": smartcarsim.Sign(hookSecret, verify)})
	var got struct{ Challenge string }
	if err := json.Unmarshal([]byte(raw), &got); err != nil || status != http.StatusOK || got.Challenge != smartcarsim.HashChallenge(hookSecret, challenge) ||
		!strings.HasPrefix(header.Get("Content-Type"), "application/json") {
		t.Fatalf("verify: %d %s %s", status, raw, header.Get("Content-Type"))
	}
}

func TestWebhookRoutesKeepTransportRules(t *testing.T) {
	e := newHookEnv(t, Options{RequireHTTPS: true})
	for _, path := range []string{smartcarWebhookPath, appleNotificationPath} {
		if status, _, _ := e.post(t, path, strings.NewReader(`{}`), nil); status != http.StatusForbidden {
			t.Errorf("%s over plain HTTP: %d", path, status)
		}
	}
	res, err := http.Get(newHookEnv(t, Options{}).srv.URL + smartcarWebhookPath)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(raw), "METHOD_NOT_ALLOWED") {
		t.Errorf("GET on the webhook: %d %s", res.StatusCode, raw)
	}
}

func TestAppleNotificationRoute(t *testing.T) {
	e := newHookEnv(t, Options{MaxBodyBytes: 4096})
	for name, tc := range map[string]struct {
		body    string
		status  int
		badSigs float64
	}{
		"unverifiable payload": {`{"payload":"forged.jws.value"}`, http.StatusUnauthorized, 1},
		"no payload":           {`{}`, http.StatusBadRequest, 0},
		"not json":             {`payload=x`, http.StatusBadRequest, 0},
		"over the app's cap":   {`{"payload":"` + strings.Repeat("a", 8192) + `"}`, http.StatusRequestEntityTooLarge, 0},
		"verified":             {`{"payload":"valid:jti-1"}`, http.StatusOK, 0},
		"verified again":       {`{"payload":"valid:jti-1"}`, http.StatusOK, 0},
	} {
		t.Run(name, func(t *testing.T) {
			before := e.counter(t, "betterkey_webhook_signature_failures_total", map[string]string{"source": "apple"})
			status, raw, _ := e.post(t, appleNotificationPath, strings.NewReader(tc.body), nil)
			if status != tc.status {
				t.Fatalf("got %d %s, want %d", status, raw, tc.status)
			}
			if got := e.counter(t, "betterkey_webhook_signature_failures_total", map[string]string{"source": "apple"}) - before; got != tc.badSigs {
				t.Fatalf("signature failures counted %v, want %v", got, tc.badSigs)
			}
		})
	}
	if got := e.counter(t, "betterkey_webhook_deliveries_total", map[string]string{"source": "apple", "outcome": "duplicate"}) +
		e.counter(t, "betterkey_webhook_deliveries_total", map[string]string{"source": "apple", "outcome": "stored"}); got != 2 {
		t.Fatalf("verified deliveries counted %v, want 2", got)
	}
}
