package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
	"github.com/betterkey/backend/gen/betterkey/admin/v1/adminv1connect"
)

// account is a seeded user: a session for reads, its vehicles, its Apple subject.
type account struct {
	sub, userID string
	s           session
	vehicles    []string
}

// fixture is what the scenarios act on: the replicas, the seeded accounts, and per-worker state.
type fixture struct {
	c        *client
	bases    []string
	admins   []string
	accounts []account
	// smartcarCars are Smartcar's ids of the linked cars, for webhook events about them.
	smartcarCars  []string
	webhookSecret string
	next          atomic.Uint64
	events        *atomic.Int64 // shared by every fixture of a run, so event ids never repeat

	refresh *refreshState
}

// refreshState holds each worker's own session for the refresh scenario (a rotated refresh token
// replaces the one before it, so two workers must never share one); the server's and the floor's
// runs share it, since both rotate the same rows.
type refreshState struct {
	mu sync.Mutex
	m  map[int]session
}

// aimedAt is f with the same accounts and refresh sessions, sending to bases.
func (f *fixture) aimedAt(bases []string) *fixture {
	return &fixture{c: f.c, bases: bases, accounts: f.accounts, smartcarCars: f.smartcarCars,
		webhookSecret: f.webhookSecret, refresh: f.refresh, events: f.events}
}

func (f *fixture) base() string {
	return f.bases[f.next.Add(1)%uint64(len(f.bases))]
}

func (f *fixture) account() account {
	return f.accounts[f.next.Add(1)%uint64(len(f.accounts))]
}

// pair is one (owner, vehicle).
type pair struct {
	a       account
	vehicle string
}

// pairs lists every seeded vehicle with its owner, the guard's vehicle (the first) left out.
func (f *fixture) pairs() []pair {
	var out []pair
	for i, a := range f.accounts {
		for j, v := range a.vehicles {
			if i == 0 && j == 0 {
				continue
			}
			out = append(out, pair{a, v})
		}
	}
	return out
}

func randomKey() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// scenario is one endpoint's fixed load.
type scenario struct {
	name string
	// floor names the raw floor's route for the same work, empty when the floor has none.
	floor bool
	run   op
}

func (f *fixture) scenarios(workers int) []scenario {
	pairs := f.pairs()
	guard := pair{f.accounts[0], f.accounts[0].vehicles[0]}
	var cursor [256]atomic.Uint64 // per worker, which of its vehicles is next
	// A worker's vehicles are every workers-th pair from its index on, so no two workers ever
	// command the same car and a 409 in the spread scenario means the guard fired on a car's
	// own earlier command.
	ownPair := func(w int) pair {
		mine := max(1, (len(pairs)-w%len(pairs)+workers-1)/workers)
		k := cursor[w%len(cursor)].Add(1) % uint64(mine)
		return pairs[(w%len(pairs)+int(k)*workers)%len(pairs)]
	}
	command := f.command
	webhook := func(ctx context.Context, secret string) outcome {
		o, _ := f.webhook(ctx, secret)
		return o
	}
	return []scenario{
		{name: "sign-in (nonce, Apple token, exchange)", run: func(ctx context.Context, w int) outcome {
			a := f.account()
			_, o := f.c.signIn(ctx, f.base(), a.sub, "load-"+strconv.Itoa(w))
			return o
		}},
		{name: "refresh", floor: true, run: func(ctx context.Context, w int) outcome {
			f.refresh.mu.Lock()
			s, ok := f.refresh.m[w]
			f.refresh.mu.Unlock()
			if !ok {
				a := f.accounts[w%len(f.accounts)]
				var o outcome
				if s, o = f.c.signIn(ctx, f.base(), a.sub, "load-refresh-"+strconv.Itoa(w)); o.status != http.StatusOK {
					return o
				}
			}
			o := f.c.do(ctx, http.MethodPost, f.base()+"/v1/auth/refresh", map[string]string{"refresh_token": s.refresh}, "", nil)
			if o.status == http.StatusOK {
				s = session{access: o.str("access_token"), refresh: o.str("refresh_token")}
			}
			f.refresh.mu.Lock()
			f.refresh.m[w] = s
			f.refresh.mu.Unlock()
			return o
		}},
		{name: "GET /v1/me", floor: true, run: func(ctx context.Context, _ int) outcome {
			return f.c.do(ctx, http.MethodGet, f.base()+"/v1/me", nil, f.account().s.access, nil)
		}},
		{name: "GET /v1/vehicles", floor: true, run: func(ctx context.Context, _ int) outcome {
			return f.c.do(ctx, http.MethodGet, f.base()+"/v1/vehicles", nil, f.account().s.access, nil)
		}},
		{name: "lock, many vehicles", run: func(ctx context.Context, w int) outcome {
			return command(ctx, ownPair(w), "lock")
		}},
		{name: "lock, one vehicle (the guard)", run: func(ctx context.Context, _ int) outcome {
			return command(ctx, guard, "lock")
		}},
		{name: "lock then long-poll to final", run: func(ctx context.Context, w int) outcome {
			p := ownPair(w)
			o := command(ctx, p, "unlock")
			if o.status != http.StatusOK && o.status != http.StatusAccepted {
				return o
			}
			return f.c.do(ctx, http.MethodGet, f.base()+"/v1/commands/"+o.str("id")+"?wait=20", nil, p.a.s.access, nil)
		}},
		{name: "webhook, good signature", floor: true, run: func(ctx context.Context, _ int) outcome {
			return webhook(ctx, f.webhookSecret)
		}},
		{name: "webhook, bad signature", floor: true, run: func(ctx context.Context, _ int) outcome {
			return webhook(ctx, "not-the-management-token")
		}},
		{name: "Connect GetUser (admin)", run: func(ctx context.Context, _ int) outcome {
			return f.adminGetUser(ctx)
		}},
	}
}

// command submits action on p's vehicle with a fresh Idempotency-Key.
func (f *fixture) command(ctx context.Context, p pair, action string) outcome {
	return f.c.do(ctx, http.MethodPost, f.base()+"/v1/vehicles/"+p.vehicle+"/commands",
		map[string]string{"action": action}, p.a.s.access, map[string]string{"Idempotency-Key": randomKey()})
}

// webhook delivers one new event signed with secret and returns its answer and the event's id.
func (f *fixture) webhook(ctx context.Context, secret string) (outcome, string) {
	body, id, err := f.webhookBody(f.events.Add(1))
	if err != nil {
		return outcome{err: err}, ""
	}
	return f.c.do(ctx, http.MethodPost, f.base()+"/v1/webhooks/smartcar", body, "",
		map[string]string{"SC-Signature": smartcarsim.Sign(secret, body)}), id
}

// webhookBody is a signed-body-to-be for event i: a VEHICLE_STATE lock change of one of the
// linked cars, each event with an id and an observation time of its own.
func (f *fixture) webhookBody(i int64) ([]byte, string, error) {
	at := time.Now().Add(-time.Minute).Add(time.Duration(i) * time.Microsecond)
	lock := smartcarsim.LockSignal(i%2 == 0, at, at)
	car := f.smartcarCars[int(i)%len(f.smartcarCars)]
	ev := smartcarsim.NewVehicleStateEvent(smartcarsim.StateEvent{UserID: "load",
		Vehicle: smartcarsim.VehicleRef{ID: car, Make: "TESLA", Model: "Model 3", Year: 2023},
		Signals: []smartcarsim.Signal{lock}, Triggers: []smartcarsim.Signal{lock}})
	body, err := ev.Encode(smartcarsim.DeliveryMeta{WebhookID: "wh-load", WebhookName: "BetterKey", DeliveryID: "d-" + strconv.FormatInt(i, 10), DeliveredAt: at})
	return body, ev.ID, err
}

// admins' Connect clients, one per replica, made once.
var adminClients sync.Map

func (f *fixture) adminGetUser(ctx context.Context) outcome {
	base := f.admins[f.next.Add(1)%uint64(len(f.admins))]
	cl, ok := adminClients.Load(base)
	if !ok {
		cl, _ = adminClients.LoadOrStore(base, adminv1connect.NewAdminServiceClient(f.c.http, base,
			connect.WithInterceptors(bearerInterceptor(adminToken))))
	}
	a := f.account()
	_, err := cl.(adminv1connect.AdminServiceClient).GetUser(ctx, &adminv1.GetUserRequest{Lookup: &adminv1.GetUserRequest_UserId{UserId: a.userID}})
	if err != nil {
		if ce, ok := err.(*connect.Error); ok {
			return outcome{status: connectStatus(ce.Code()), code: ce.Code().String()}
		}
		return outcome{err: err}
	}
	return outcome{status: http.StatusOK}
}

func bearerInterceptor(token string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}
}

// connectStatus maps a Connect code to the HTTP status the report groups it under.
func connectStatus(c connect.Code) int {
	switch c {
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeUnavailable:
		return http.StatusServiceUnavailable
	case connect.CodeResourceExhausted:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// seed signs n accounts in and links the consenting Smartcar account's cars to each.
func (f *fixture) seed(ctx context.Context, n int) error {
	f.accounts = make([]account, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			sub := fmt.Sprintf("000100.%032x.%04d", i, i%10000)
			base := f.bases[0]
			s, o := f.c.signIn(ctx, base, sub, "load-seed")
			if err := o.failure(http.StatusOK, "seed sign-in"); err != nil {
				errs <- err
				return
			}
			user, _ := o.body["user"].(map[string]any)
			id, _ := user["id"].(string)
			vs, err := f.c.link(ctx, base, s)
			if err != nil {
				errs <- err
				return
			}
			f.accounts[i] = account{sub: sub, userID: id, s: s, vehicles: vs}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}
