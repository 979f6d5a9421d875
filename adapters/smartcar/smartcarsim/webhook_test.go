package smartcarsim_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
)

func TestSignMatchesTheSDKTestVectors(t *testing.T) {
	got := []string{smartcarsim.HashChallenge("amt", "challenge"), smartcarsim.Sign("amt", []byte(`{"pizza":"pasta"}`))}
	want := []string{"9baf5a7464bd86740ad5a06e439dcf535a075022ed2c92d74efacf646d79328e",
		"4c05a8da471f05156ad717baa4017acd13a3a809850b9ca7d3301dcaaa854f70"}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("(-got +want):\n%s", diff)
	}
}

// inProcess delivers to a handler without a network, so a synctest bubble controls all time.
type inProcess struct{ h http.Handler }

func (p inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	p.h.ServeHTTP(rec, r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}

// received is one delivery as the receiver saw it.
type received struct {
	at        time.Duration
	body      []byte
	signature string
}

// receiver answers attempt i (from 0) with answer(i) and records every attempt.
func receiver(began time.Time, answer func(i int, w http.ResponseWriter, r *http.Request)) (http.Handler, *[]received) {
	var got []received
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, received{at: time.Since(began), body: b, signature: r.Header.Get("SC-Signature")})
		answer(len(got)-1, w, r)
	}), &got
}

func newWebhookSim(t *testing.T, h http.Handler, o smartcarsim.WebhookOptions) *smartcarsim.Simulator {
	t.Helper()
	o.Client = &http.Client{Transport: inProcess{h}}
	sim, err := smartcarsim.New(smartcarsim.Options{RedirectURIs: []string{appRedirect}, Webhook: o})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

func TestDeliverRetriesLikeSmartcar(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, got := receiver(time.Now(), func(i int, w http.ResponseWriter, r *http.Request) {
			if i < 3 {
				w.WriteHeader(http.StatusInternalServerError)
			}
		})
		sim := newWebhookSim(t, h, smartcarsim.WebhookOptions{})
		car := sim.CreateUser(smartcarsim.DefaultFleet()...).VehicleIDs[0]
		ev, err := sim.LockStateEvent(car, smartcarsim.Drift{})
		if err != nil {
			t.Fatal(err)
		}
		d, err := sim.Deliver(t.Context(), "https://receiver.example/v1/webhooks/smartcar", ev)
		if err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		var at []time.Duration
		ids := map[string]bool{}
		for i, g := range *got {
			at = append(at, g.at)
			var env struct {
				EventID string `json:"eventId"`
				Meta    struct {
					DeliveryID  string `json:"deliveryId"`
					DeliveredAt int64  `json:"deliveredAt"`
				} `json:"meta"`
			}
			if err := json.Unmarshal(g.body, &env); err != nil {
				t.Fatal(err)
			}
			ids[env.Meta.DeliveryID] = true
			if env.EventID != ev.ID || env.Meta.DeliveryID != d.Attempts[i].DeliveryID || g.signature != smartcarsim.Sign(sim.ManagementToken(), g.body) {
				t.Errorf("attempt %d: event %q, delivery %q, signature valid %v", i, env.EventID, env.Meta.DeliveryID,
					g.signature == smartcarsim.Sign(sim.ManagementToken(), g.body))
			}
		}
		if diff := cmp.Diff(at, []time.Duration{0, 25 * time.Second, 75 * time.Second, 175 * time.Second}); diff != "" {
			t.Errorf("attempt times (-got +want):\n%s", diff)
		}
		if len(ids) != 4 || sim.Stats().WebhookAttempts != 4 {
			t.Errorf("%d distinct delivery ids, %d attempts; want 4", len(ids), sim.Stats().WebhookAttempts)
		}
	})
}

func TestDeliverGivesUpTimesOutAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, got := receiver(time.Now(), func(int, http.ResponseWriter, *http.Request) {})
		failing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r)
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		sim := newWebhookSim(t, failing, smartcarsim.WebhookOptions{})
		d, err := sim.Deliver(t.Context(), "https://r.example", smartcarsim.NewVerifyEvent("c"))
		if err == nil || len(d.Attempts) != 4 || d.Attempts[3].Status != 503 || (*got)[3].at != 175*time.Second {
			t.Errorf("always 503: %v, %+v", err, d)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		h, got := receiver(time.Now(), func(i int, w http.ResponseWriter, r *http.Request) {
			if i == 0 {
				<-r.Context().Done() // slower than Smartcar waits
			}
		})
		sim := newWebhookSim(t, h, smartcarsim.WebhookOptions{})
		d, err := sim.Deliver(t.Context(), "https://r.example", smartcarsim.NewVerifyEvent("c"))
		if err != nil || len(d.Attempts) != 2 || !errors.Is(d.Attempts[0].Err, context.DeadlineExceeded) || (*got)[1].at != 40*time.Second {
			t.Errorf("slow receiver: %v, %+v", err, d)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		h, _ := receiver(time.Now(), func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
		sim := newWebhookSim(t, h, smartcarsim.WebhookOptions{})
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		d, err := sim.Deliver(ctx, "https://r.example", smartcarsim.NewVerifyEvent("c"))
		if !errors.Is(err, context.DeadlineExceeded) || len(d.Attempts) != 2 {
			t.Errorf("ctx ended while waiting: %v, %d attempts", err, len(d.Attempts))
		}
	})
	synctest.Test(t, func(t *testing.T) {
		h, _ := receiver(time.Now(), func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
		sim := newWebhookSim(t, h, smartcarsim.WebhookOptions{RetryDelays: []time.Duration{}})
		if d, err := sim.Deliver(t.Context(), "https://r.example", smartcarsim.NewVerifyEvent("c")); err == nil || len(d.Attempts) != 1 {
			t.Errorf("no retries configured: %v, %d attempts", err, len(d.Attempts))
		}
	})
}

// verifier answers VERIFY as a correct receiver would, with key.
func verifier(key string, legacy bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env struct {
			Data    struct{ Challenge string } `json:"data"`
			Payload struct{ Challenge string } `json:"payload"`
		}
		_ = json.NewDecoder(r.Body).Decode(&env)
		c := env.Data.Challenge
		if legacy {
			c = env.Payload.Challenge
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"challenge": smartcarsim.HashChallenge(key, c)})
	})
}

func TestVerify(t *testing.T) {
	ok := newWebhookSim(t, verifier(smartcarsim.DevManagementToken, false), smartcarsim.WebhookOptions{})
	if err := ok.Verify(t.Context(), "https://r.example", smartcarsim.NewVerifyEvent(smartcarsim.NewChallenge())); err != nil {
		t.Errorf("correct receiver: %v", err)
	}
	legacy := newWebhookSim(t, verifier(smartcarsim.DevManagementToken, true), smartcarsim.WebhookOptions{})
	if err := legacy.Verify(t.Context(), "https://r.example", smartcarsim.NewLegacyVerifyEvent("abc")); err != nil {
		t.Errorf("legacy receiver: %v", err)
	}
	wrong := newWebhookSim(t, verifier("another-token", false), smartcarsim.WebhookOptions{})
	if err := wrong.Verify(t.Context(), "https://r.example", smartcarsim.NewVerifyEvent("abc")); err == nil || !strings.Contains(err.Error(), "invalid hash") {
		t.Errorf("wrong key: %v", err)
	}
	if err := ok.Verify(t.Context(), "https://r.example", smartcarsim.NewVerifyEvent("")); err == nil {
		t.Error("Verify accepted an event without a challenge")
	}
	var sigs []string
	rec := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sigs = append(sigs, r.Header.Get("SC-Signature")) })
	unsigned := newWebhookSim(t, rec, smartcarsim.WebhookOptions{UnsignedVerify: true, RetryDelays: []time.Duration{}})
	_, _ = unsigned.Deliver(t.Context(), "https://r.example", smartcarsim.NewVerifyEvent("abc"))
	_, _ = unsigned.Deliver(t.Context(), "https://r.example", smartcarsim.NewLegacyEventBased("v", "CHARGING_STARTED", start, ""))
	if len(sigs) != 2 || sigs[0] != "" || sigs[1] == "" {
		t.Errorf("signatures %q: want VERIFY unsigned and other events signed", sigs)
	}
}
