package command_test

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/app/command"
	"github.com/betterkey/backend/app/vehiclelink"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// harness is the command service on the in-memory fakes, with one owner who linked two cars.
type harness struct {
	t        *testing.T
	api      *memory.VehicleAPI
	conns    *memory.Connections
	cmds     *memory.Commands
	sessions *memory.Sessions
	link     *vehiclelink.Service
	svc      *command.Service
	obs      *recorder
	user     domain.UserID
	session  domain.SessionID
	vehicles []domain.Vehicle
}

func newHarness(t *testing.T, cfg command.Config) *harness {
	t.Helper()
	h := &harness{t: t, api: memory.NewVehicleAPI(memory.VehicleAPIOptions{}), sessions: memory.NewSessions(), obs: &recorder{}}
	h.conns = memory.NewConnections(memory.NewSealedSecrets())
	h.cmds = memory.NewCommands(h.conns)
	h.link = vehiclelink.New(vehiclelink.Deps{States: memory.NewConnectStates(), Connections: h.conns, API: h.api,
		Cipher: memory.NewCipher()}, vehiclelink.Config{})
	h.user, h.vehicles = h.linkOwner()
	s := domain.NewSession(h.user, "install", domain.DeviceWatch, "Watch", domain.HashToken(domain.NewOpaqueToken().Reveal()),
		time.Now(), domain.DefaultSessionLifetimes())
	if err := h.sessions.Create(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	h.session = s.ID
	if cfg.ClaimInterval == 0 {
		cfg.ClaimInterval = 10 * time.Millisecond
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 10 * time.Millisecond
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = time.Millisecond
	}
	h.svc = command.New(command.Deps{Commands: h.cmds, Connections: h.conns, Sessions: h.sessions, API: h.api,
		Access: h.link, Observer: h.obs, Report: h.obs.report}, cfg)
	return h
}

// linkOwner connects a new owner's two cars through the vehicle link, as Connect would.
func (h *harness) linkOwner() (domain.UserID, []domain.Vehicle) {
	h.t.Helper()
	ctx := h.t.Context()
	sc, _ := h.api.CreateVehicleUser(domain.VehicleAttributes{Make: "TESLA", Model: "Model 3", Year: 2023},
		domain.VehicleAttributes{Make: "FORD", Model: "Mustang Mach-E", Year: 2022})
	user := domain.NewUserID()
	authorize, _, err := h.link.StartConnect(ctx, user, ports.ConnectOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	code, err := h.api.Consent(authorize, sc)
	if err != nil {
		h.t.Fatal(err)
	}
	u, _ := url.Parse(authorize)
	pending, err := h.link.Callback(ctx, vehiclelink.CallbackInput{State: domain.NewSecret(u.Query().Get("state")), Code: code})
	if err != nil {
		h.t.Fatal(err)
	}
	linked, err := h.link.CompleteConnect(ctx, user, pending.Link)
	if err != nil {
		h.t.Fatal(err)
	}
	return user, linked.Vehicles
}

// run starts a worker on svc and stops it, drained, when the test ends.
func (h *harness) run(svc *command.Service) *command.Worker {
	h.t.Helper()
	w := svc.NewWorker()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	h.t.Cleanup(func() {
		cancel()
		<-done
		dctx, dcancel := context.WithTimeout(context.Background(), time.Second)
		defer dcancel()
		_ = w.Drain(dctx)
	})
	return w
}

// submit asks for action on vehicle i with an optional key.
func (h *harness) submit(i int, action, key string) (command.Submitted, error) {
	return h.svc.Submit(h.t.Context(), command.SubmitInput{UserID: h.user, SessionID: h.session,
		VehicleID: h.vehicles[i].ID, Action: action, IdempotencyKey: key})
}

// mustSubmit submits and fails the test unless a command was admitted.
func (h *harness) mustSubmit(i int, action string) domain.Command {
	h.t.Helper()
	s, err := h.submit(i, action, "")
	if err != nil {
		h.t.Fatalf("Submit: %v", err)
	}
	return s.Command
}

// final long-polls until the command is final and fails the test if it is not within 5 s.
func (h *harness) final(id domain.CommandID) domain.Command {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := h.svc.Get(h.t.Context(), h.user, id, time.Second)
		if err != nil {
			h.t.Fatalf("Get: %v", err)
		}
		if c.Status.Final() {
			return c
		}
	}
	h.t.Fatalf("command %s not final in time", id)
	return domain.Command{}
}

// commands reports how many commands reached car i.
func (h *harness) commands(i int) int {
	_, n, _ := h.api.Car(h.vehicles[i].SmartcarID)
	return n
}

// recorder is the test's CommandObserver.
type recorder struct {
	mu        sync.Mutex
	admitted  int
	refused   map[string]int
	executing int
	finished  map[domain.CommandStatus]int
	reports   []string
}

func (r *recorder) Admitted(domain.Command) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.admitted++
}

func (r *recorder) Refused(_ domain.CommandAction, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refused == nil {
		r.refused = map[string]int{}
	}
	r.refused[code]++
}

func (r *recorder) Executing(d int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.executing += d
}

func (r *recorder) Finished(c domain.Command) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished == nil {
		r.finished = map[domain.CommandStatus]int{}
	}
	r.finished[c.Status]++
}

func (r *recorder) report(op string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, op+": "+err.Error())
}

func (r *recorder) refusals(code string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused[code]
}
