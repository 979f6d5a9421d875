package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/api/client"
)

// contractDoer sends the generated client's requests and holds every response to the document,
// as the suite's own requests are.
type contractDoer struct{ t *testing.T }

func (d contractDoer) Do(req *http.Request) (*http.Response, error) {
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, err
	}
	checkContract(d.t, req, res, raw)
	res.Body = io.NopCloser(bytes.NewReader(raw))
	return res, nil
}

// The app's flow driven through the client generated from api/openapi.yaml: a document that
// drifts from the server breaks this test, and one that changes shape breaks its build.
func TestGeneratedClientFlow(t *testing.T) {
	e := startServer(t)
	ctx := t.Context()
	if err := e.sc.SetConsentUser(e.sc.CreateUser(smartcarsim.VehicleSpec{Make: "TESLA", Model: "Model Y", Year: 2025}).ID); err != nil {
		t.Fatal(err)
	}
	c, err := client.NewClientWithResponses(e.servers.HTTPURL(), client.WithHTTPClient(contractDoer{t}))
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.IssueNonceWithResponse(ctx)
	if err != nil || n.JSON201 == nil {
		t.Fatalf("nonce: %v %v", err, n)
	}
	in, err := c.SignInWithResponse(ctx, client.SignInRequest{
		IdentityToken: e.mint(applesim.NewSubject(), n.JSON201.Nonce, nil), Nonce: n.JSON201.Nonce,
		InstallId: "generated-client", Device: client.Phone,
	})
	if err != nil || in.JSON200 == nil {
		t.Fatalf("sign-in: %v %s", err, in.Body)
	}
	auth := client.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+in.JSON200.AccessToken)
		return nil
	})
	c, _ = client.NewClientWithResponses(e.servers.HTTPURL(), client.WithHTTPClient(contractDoer{t}), auth)

	start, err := c.StartConnectWithResponse(ctx, client.ConnectRequest{})
	if err != nil || start.JSON200 == nil {
		t.Fatalf("connect: %v %s", err, start.Body)
	}
	back := e.hop(e.hop(start.JSON200.AuthorizeUrl).String())
	link := back.Query().Get("link")
	if back.Query().Get("status") != "pending" || link == "" {
		t.Fatalf("the callback sent the app to %s", back)
	}
	done, err := c.CompleteConnectWithResponse(ctx, client.CompleteConnectRequest{Link: link})
	if err != nil || done.JSON200 == nil || len(done.JSON200.Vehicles) == 0 {
		t.Fatalf("complete: %v %s", err, done.Body)
	}
	car := done.JSON200.Vehicles[0]
	if car.Status != client.Active || car.Make == "" {
		t.Fatalf("vehicle %+v", car)
	}
	key := "generated-" + strings.ReplaceAll(url.QueryEscape(car.Id[:8]), "%", "")
	sub, err := c.SubmitCommandWithResponse(ctx, car.Id, &client.SubmitCommandParams{IdempotencyKey: &key}, client.CommandRequest{Action: client.Lock})
	if err != nil || (sub.JSON200 == nil && sub.JSON202 == nil) {
		t.Fatalf("lock: %v %d %s", err, sub.StatusCode(), sub.Body)
	}
	cmd := sub.JSON200
	if cmd == nil {
		cmd = sub.JSON202
	}
	wait := 20
	got, err := c.GetCommandWithResponse(ctx, cmd.Id, &client.GetCommandParams{Wait: &wait})
	if err != nil || got.JSON200 == nil || got.JSON200.Status != client.CommandStatusSucceeded {
		t.Fatalf("command: %v %s", err, got.Body)
	}
	st, err := c.VehicleStatusWithResponse(ctx, car.Id)
	if err != nil || st.JSON200 == nil || st.JSON200.Locked == nil || !*st.JSON200.Locked {
		t.Fatalf("status: %v %s", err, st.Body)
	}
	history, err := c.ListCommandsWithResponse(ctx, car.Id, nil)
	if err != nil || history.JSON200 == nil || len(history.JSON200.Commands) != 1 {
		t.Fatalf("history: %v %s", err, history.Body)
	}
	// A refusal decodes as the documented problem.
	bad, err := c.SubmitCommandWithBodyWithResponse(ctx, car.Id, nil, "application/json", strings.NewReader(`{"action":"lock","action":"unlock"}`))
	if err != nil || bad.ApplicationproblemJSON400 == nil || bad.ApplicationproblemJSON400.Code != client.VALIDATIONFAILED {
		t.Fatalf("duplicate action: %v %s", err, bad.Body)
	}
}
