package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
)

// inboxRow is one webhook_inbox row as the worker left it.
type inboxRow struct {
	status, outcome string
	attempts        int
}

// processed waits for the server's inbox worker to finish an event and returns its row. The
// worker runs inside the server under test, behind real HTTP and PostgreSQL, so the test cannot
// hold a channel to it; it watches the row instead, bounded by a deadline.
func (e *env) processed(source, id string) inboxRow {
	e.t.Helper()
	conn, err := pgx.Connect(e.t.Context(), e.dbURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(15 * time.Second)
	for {
		var r inboxRow
		err := conn.QueryRow(e.t.Context(), `SELECT status, outcome, attempts FROM webhook_inbox WHERE source = $1 AND event_id = $2`,
			source, id).Scan(&r.status, &r.outcome, &r.attempts)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			e.t.Fatal(err)
		}
		if err == nil && r.status != "pending" {
			return r
		}
		select {
		case <-tick.C:
		case <-deadline:
			e.t.Fatalf("event %s/%s was not processed in time (row %+v)", source, id, r)
		}
	}
}

func (e *env) webhookURL() string { return e.servers.HTTPURL() + "/v1/webhooks/smartcar" }

// deliver sends ev through the simulator's delivery (signed, retried like Smartcar) and requires
// it to succeed on the first attempt.
func (e *env) deliver(ev smartcarsim.Event) {
	e.t.Helper()
	d, err := e.sc.Deliver(e.t.Context(), e.webhookURL(), ev)
	if err != nil || len(d.Attempts) != 1 || d.Attempts[0].Status != http.StatusOK {
		e.t.Fatalf("Deliver = %+v, %v; want one successful attempt", d, err)
	}
}

// linkedCar signs a new user in, connects a one-car Smartcar account and returns the session,
// BetterKey's vehicle id and Smartcar's.
func (e *env) linkedCar(sub string) (session, string, string) {
	e.t.Helper()
	owner := e.sc.CreateUser(smartcarsim.VehicleSpec{Make: "TESLA", Model: "Model 3", Year: 2023})
	if err := e.sc.SetConsentUser(owner.ID); err != nil {
		e.t.Fatal(err)
	}
	s := e.signIn(sub, "install-1", "phone")
	if q, _ := e.connect(s.access, ""); q.Get("status") != "linked" {
		e.t.Fatalf("connect: %v", q)
	}
	return s, e.vehicles(s.access)[0]["id"].(string), owner.VehicleIDs[0]
}

func TestSmartcarWebhookUpdatesTheStatus(t *testing.T) {
	e := startServer(t)
	s, id, car := e.linkedCar(applesim.NewSubject())
	if err := e.sc.Verify(t.Context(), e.webhookURL(), smartcarsim.NewVerifyEvent(smartcarsim.NewChallenge())); err != nil {
		t.Fatalf("the Dashboard's verification: %v", err)
	}

	if err := e.sc.SetLocked(car, false); err != nil { // someone unlocked it with the physical key
		t.Fatal(err)
	}
	ev, err := e.sc.LockStateEvent(car, smartcarsim.Drift{TopLevelTriggers: true, RetrievedAt: true, SignalStatus: true})
	if err != nil {
		t.Fatal(err)
	}
	e.deliver(ev)
	if r := e.processed("smartcar", ev.ID); r.outcome != "applied" || r.attempts != 1 {
		t.Fatalf("inbox row %+v", r)
	}
	c, _ := e.sc.Car(car)
	st := e.do("GET", "/v1/vehicles/"+id+"/status", nil, s.access)
	e.expect(st, http.StatusOK, "")
	if locked, ok := st.body["locked"].(bool); !ok || locked || st.str("source") != "webhook" ||
		st.str("observed_at") != c.UpdatedAt.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano) {
		t.Fatalf("status %s, want unlocked from the webhook, observed at %v", st.raw, c.UpdatedAt)
	}

	// An older observation arriving later does not roll the status back.
	older := smartcarsim.LockSignal(true, c.UpdatedAt.Add(-time.Hour), c.UpdatedAt.Add(-time.Hour))
	late := smartcarsim.NewVehicleStateEvent(smartcarsim.StateEvent{UserID: c.UserID, Vehicle: smartcarsim.VehicleRef{ID: car},
		Signals: []smartcarsim.Signal{older}, Triggers: []smartcarsim.Signal{older}})
	e.deliver(late)
	if r := e.processed("smartcar", late.ID); r.outcome != "stale" {
		t.Fatalf("late event: %+v", r)
	}
	st = e.do("GET", "/v1/vehicles/"+id+"/status", nil, s.access)
	if locked, _ := st.body["locked"].(bool); locked || st.str("source") != "webhook" {
		t.Fatalf("status after the late event: %s", st.raw)
	}

	// Smartcar's retry of the first event (same eventId, new delivery) is acknowledged, not rerun.
	e.deliver(ev)
	if r := e.processed("smartcar", ev.ID); r.attempts != 1 {
		t.Fatalf("replayed event processed again: %+v", r)
	}

	// A car nobody here linked: acknowledged and dropped.
	stranger := smartcarsim.NewVehicleStateEvent(smartcarsim.StateEvent{UserID: "someone", Vehicle: smartcarsim.VehicleRef{ID: "not-ours"},
		Signals: []smartcarsim.Signal{older}})
	e.deliver(stranger)
	if r := e.processed("smartcar", stranger.ID); r.outcome != "unknown_vehicle" {
		t.Fatalf("unknown vehicle: %+v", r)
	}

	// Revoked permission marks the connection, which the vehicle list shows.
	revoked := smartcarsim.NewVehicleErrorEvent(smartcarsim.ErrorEvent{UserID: c.UserID, Vehicle: smartcarsim.VehicleRef{ID: car},
		Errors: []smartcarsim.VehicleError{{Type: "PERMISSION", Resolution: "REAUTHENTICATE"}}, Drift: smartcarsim.Drift{ErrorSignalsAsStrings: true}})
	e.deliver(revoked)
	if r := e.processed("smartcar", revoked.ID); r.outcome != "marked" {
		t.Fatalf("permission error: %+v", r)
	}
	if v := e.vehicles(s.access)[0]; v["status"] != "revoked" {
		t.Fatalf("vehicle after the permission error: %v", v)
	}

	if logs := e.logs.String(); strings.Contains(logs, config.DevSmartcarManagementToken) {
		t.Fatal("the webhook secret reached the logs")
	}
}

// lostAck forwards the first delivery and then loses the answer, as a reset connection would:
// the server stored the event, Smartcar believes the attempt failed and retries.
type lostAck struct{ calls atomic.Int32 }

func (l *lostAck) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || l.calls.Add(1) > 1 {
		return res, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return nil, errors.New("connection reset by peer")
}

func TestSmartcarRetriesAndReplicasDeduplicate(t *testing.T) {
	a := startServer(t)
	b := a.another()
	_, _, car := a.linkedCar(applesim.NewSubject())
	// A Smartcar whose first answer gets lost; its retries come without the 25 s waits.
	flaky, err := smartcarsim.New(smartcarsim.Options{RedirectURIs: []string{"http://unused.test/cb"},
		ManagementToken: config.DevSmartcarManagementToken, Webhook: smartcarsim.WebhookOptions{
			RetryDelays: []time.Duration{0, 0, 0}, Client: &http.Client{Transport: &lostAck{}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(flaky.Close)
	ev, err := a.sc.LockStateEvent(car, smartcarsim.Drift{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := flaky.Deliver(t.Context(), a.webhookURL(), ev)
	if err != nil || len(d.Attempts) != 2 || d.Attempts[0].Err == nil || d.Attempts[1].Status != http.StatusOK {
		t.Fatalf("Deliver = %+v, %v; want a lost first answer and a successful retry", d, err)
	}
	b.deliver(ev) // the same event reaching the other replica
	if r := a.processed("smartcar", ev.ID); r.outcome != "applied" || r.attempts != 1 {
		t.Fatalf("inbox row %+v; want one processing", r)
	}
	if n := a.count("webhook_inbox"); n != 1 {
		t.Fatalf("%d inbox rows, want 1", n)
	}

	// A forged delivery is refused before anything is stored.
	req, _ := http.NewRequest(http.MethodPost, b.webhookURL(), strings.NewReader(`{"eventId":"forged","eventType":"VEHICLE_STATE"}`))
	req.Header.Set("SC-Signature", smartcarsim.Sign("guessed-token", []byte(`{"eventId":"forged","eventType":"VEHICLE_STATE"}`)))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || a.count("webhook_inbox") != 1 {
		t.Fatalf("forged delivery: %d, %d rows", res.StatusCode, a.count("webhook_inbox"))
	}
}

func (e *env) notify(o applesim.NotificationOptions) error {
	e.t.Helper()
	jws, err := e.apple.MintNotification(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return applesim.DeliverNotification(e.t.Context(), http.DefaultClient, e.servers.HTTPURL()+"/v1/apple/notifications", jws)
}

func TestAppleConsentRevokedEndsSessionsAtOnce(t *testing.T) {
	e := startServer(t)
	sub := applesim.NewSubject()
	s := e.signIn(sub, "install-1", "phone")
	watch := e.signIn(sub, "install-2", "watch")
	mint := func(o applesim.NotificationOptions) string {
		o.Type, o.Subject = applesim.EventConsentRevoked, sub
		jws, err := e.apple.MintNotification(o)
		if err != nil {
			t.Fatal(err)
		}
		return jws
	}
	tampered := []byte(mint(applesim.NotificationOptions{}))
	tampered[len(tampered)-10] ^= 0x01 // a letter of the signature flips case
	url := e.servers.HTTPURL() + "/v1/apple/notifications"
	for name, jws := range map[string]string{
		"bad signature":  string(tampered),
		"unknown key":    mint(applesim.NotificationOptions{KID: "unknown-kid"}),
		"wrong audience": mint(applesim.NotificationOptions{Audience: "com.betterkey.app.watchkitapp"}),
		"expired":        mint(applesim.NotificationOptions{IssuedAt: time.Now().Add(-48 * time.Hour)}),
	} {
		if err := applesim.DeliverNotification(t.Context(), http.DefaultClient, url, jws); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("%s: %v, want 401", name, err)
		}
	}
	if n := e.count("webhook_inbox"); n != 0 {
		t.Fatalf("%d rows stored by refused notifications", n)
	}
	e.expect(e.do("GET", "/v1/me", nil, s.access), http.StatusOK, "")

	jws := mint(applesim.NotificationOptions{})
	if err := applesim.DeliverNotification(t.Context(), http.DefaultClient, url, jws); err != nil {
		t.Fatal(err)
	}
	e.expect(e.do("GET", "/v1/me", nil, s.access), http.StatusUnauthorized, "SESSION_REVOKED")
	e.expect(e.do("GET", "/v1/me", nil, watch.access), http.StatusUnauthorized, "SESSION_REVOKED")

	// The user signs in again; Apple's duplicate of the old notification changes nothing.
	again := e.signIn(sub, "install-1", "phone")
	if err := applesim.DeliverNotification(t.Context(), http.DefaultClient, url, jws); err != nil {
		t.Fatal(err)
	}
	e.expect(e.do("GET", "/v1/me", nil, again.access), http.StatusOK, "")
	if err := e.notify(applesim.NotificationOptions{Type: applesim.EventConsentRevoked, Subject: applesim.NewSubject(), EventsAsObject: true,
		EventTimeSeconds: true}); err != nil {
		t.Fatalf("an unknown subject: %v", err)
	}
}

func TestAppleAccountDeletedRemovesTheAccount(t *testing.T) {
	e := startServer(t)
	keep := e.signIn(applesim.NewSubject(), "install-9", "phone")
	sub := applesim.NewSubject()
	s, _, car := e.linkedCar(sub)
	before := e.sc.Stats().APIRequests
	if err := e.notify(applesim.NotificationOptions{Type: applesim.EventAccountDelete, Subject: sub}); err != nil {
		t.Fatal(err)
	}
	e.expect(e.do("GET", "/v1/me", nil, s.access), http.StatusUnauthorized, "SESSION_REVOKED")
	for table, want := range map[string]int{"users": 1, "sessions": 1, "connections": 0, "vehicles": 0, "sealed_secrets": 0} {
		if n := e.count(table); n != want {
			t.Errorf("%s: %d rows, want %d (the other user's only)", table, n, want)
		}
	}
	if e.sc.Stats().APIRequests == before {
		t.Error("the vehicle was not disconnected at Smartcar")
	}
	if _, ok := e.sc.Car(car); !ok {
		t.Fatal("the simulated car vanished")
	}
	e.expect(e.do("GET", "/v1/me", nil, keep.access), http.StatusOK, "")
	if err := e.notify(applesim.NotificationOptions{Type: applesim.EventAccountDeleted, Subject: sub}); err != nil {
		t.Fatalf("account-deleted for an account already gone: %v", err)
	}
	e.assertNoTokenLeaks()
}
