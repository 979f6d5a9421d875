package keys_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/app/keys"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// fixture is the key-management service over the in-memory cipher and one table of secrets that
// the connection store writes token sets into, as in the database.
type fixture struct {
	svc     *keys.Service
	cipher  *memory.Cipher
	secrets *memory.SealedSecrets
	conns   *memory.Connections
	// plain maps each seeded connection to the plaintext of its token set.
	plain map[domain.ConnectionID]string
}

func newFixture() *fixture {
	f := &fixture{cipher: memory.NewCipher(), secrets: memory.NewSealedSecrets(), plain: map[domain.ConnectionID]string{}}
	f.conns = memory.NewConnections(f.secrets)
	f.svc = keys.New(keys.Deps{Keys: f.cipher, Cipher: f.cipher, Secrets: f.secrets})
	return f
}

// seed stores n connections whose token sets c seals (f.cipher when nil) under its latest version.
func (f *fixture) seed(t *testing.T, n int, c ports.TokenCipher) []domain.Connection {
	t.Helper()
	if c == nil {
		c = f.cipher
	}
	out := make([]domain.Connection, 0, n)
	now := time.Now()
	for i := range n {
		conn := domain.Connection{
			ID: domain.NewConnectionID(), UserID: domain.NewUserID(), SmartcarUserID: "sc-user-" + strconv.Itoa(i),
			Status: domain.ConnectionActive, Scopes: domain.DefaultConnectScopes(),
			AccessExpiresAt: now.Add(time.Hour), RefreshExpiresAt: now.Add(24 * time.Hour), CreatedAt: now, UpdatedAt: now,
		}
		plain := "token-set-" + string(conn.ID)
		sealed, err := c.Seal(t.Context(), conn.TokenBinding(), domain.NewSecret(plain))
		if err != nil {
			t.Fatalf("seal: %v", err)
		}
		conn.Tokens = sealed
		v := domain.Vehicle{ID: domain.NewVehicleID(), SmartcarID: "sc-vehicle-" + string(conn.ID)}
		if _, err := f.conns.SaveGrant(t.Context(), conn, []domain.Vehicle{v}); err != nil {
			t.Fatalf("save grant: %v", err)
		}
		f.plain[conn.ID] = plain
		out = append(out, conn)
	}
	return out
}

// wantReport fails unless the report lists exactly these secrets per version.
func (f *fixture) wantReport(t *testing.T, want keys.Report) {
	t.Helper()
	got, err := f.svc.Report(t.Context())
	if err != nil {
		t.Fatalf("Report: %v", err)
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Report (-got +want):\n%s", diff)
	}
}

// wantOpens fails unless every seeded connection's token set opens to its plaintext.
func (f *fixture) wantOpens(t *testing.T, conns []domain.Connection) {
	t.Helper()
	for _, c := range conns {
		got, err := f.conns.Get(t.Context(), c.ID)
		if err != nil {
			t.Fatalf("get connection: %v", err)
		}
		pt, err := f.cipher.Open(t.Context(), got.TokenBinding(), got.Tokens)
		if err != nil {
			t.Fatalf("open token set of %s: %v", c.ID, err)
		}
		if pt.Reveal() != f.plain[c.ID] {
			t.Errorf("token set of %s changed its plaintext", c.ID)
		}
	}
}

func TestRotateRewrapReportRetire(t *testing.T) {
	f := newFixture()
	conns := f.seed(t, 7, nil)
	v, err := f.svc.Rotate(t.Context())
	if err != nil || v != 2 {
		t.Fatalf("Rotate = %d, %v; want 2", v, err)
	}
	f.wantReport(t, keys.Report{Latest: 2, MinDecryption: 1, Versions: []keys.VersionUsage{
		{Version: 1, Secrets: 7}, {Version: 2, Secrets: 0},
	}})

	var seen []keys.Progress
	got, err := f.svc.Rewrap(t.Context(), 3, func(p keys.Progress) { seen = append(seen, p) })
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	wantSeen := []keys.Progress{
		{TargetVersion: 2, Batches: 1, Done: 3, Remaining: 4},
		{TargetVersion: 2, Batches: 2, Done: 6, Remaining: 1},
		{TargetVersion: 2, Batches: 3, Done: 7, Remaining: 0},
	}
	if diff := cmp.Diff(seen, wantSeen); diff != "" {
		t.Errorf("progress (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(got, wantSeen[2]); diff != "" {
		t.Errorf("final progress (-got +want):\n%s", diff)
	}
	f.wantReport(t, keys.Report{Latest: 2, MinDecryption: 1, Versions: []keys.VersionUsage{
		{Version: 1, Secrets: 0}, {Version: 2, Secrets: 7},
	}})
	f.wantOpens(t, conns)

	if err := f.svc.Retire(t.Context(), 2); err != nil {
		t.Fatalf("Retire: %v", err)
	}
	f.wantReport(t, keys.Report{Latest: 2, MinDecryption: 2, Versions: []keys.VersionUsage{{Version: 2, Secrets: 7}}})
	f.wantOpens(t, conns)

	// A second run finds nothing to do.
	again, err := f.svc.Rewrap(t.Context(), 0, func(keys.Progress) { t.Error("progress reported without a batch") })
	if err != nil || again != (keys.Progress{TargetVersion: 2}) {
		t.Errorf("second Rewrap = %+v, %v; want nothing done", again, err)
	}
}

func TestRetireRefusedWhileInUse(t *testing.T) {
	f := newFixture()
	f.seed(t, 2, nil)
	if _, err := f.svc.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.seed(t, 1, nil) // under version 2

	err := f.svc.Retire(t.Context(), 2)
	if !errors.Is(err, keys.ErrKeyVersionInUse) {
		t.Fatalf("Retire = %v, want ErrKeyVersionInUse", err)
	}
	if e := domain.AsError(err); e == nil || e.Kind != domain.KindFailedPrecondition || e.Code != "KEY_VERSION_IN_USE" {
		t.Errorf("Retire error = %+v, want failed precondition KEY_VERSION_IN_USE", e)
	}
	if kv, _ := f.cipher.Versions(t.Context()); kv.MinDecryption != 1 {
		t.Errorf("a refused Retire moved the minimum decryption version to %d", kv.MinDecryption)
	}
	// Retiring nothing (the minimum stays 1) is allowed, and so are bad values refused by kind.
	if err := f.svc.Retire(t.Context(), 1); err != nil {
		t.Errorf("Retire(1) = %v", err)
	}
	for _, bad := range []int{0, 3} {
		if err := f.svc.Retire(t.Context(), bad); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("Retire(%d) = %v, want an invalid-argument error", bad, err)
		}
	}
}

// countingCipher counts the secrets handed to Rewrap.
type countingCipher struct {
	*memory.Cipher
	mu    sync.Mutex
	items int
}

func (c *countingCipher) Rewrap(ctx context.Context, items []ports.RewrapItem) ([]ports.RewrapResult, error) {
	c.mu.Lock()
	c.items += len(items)
	c.mu.Unlock()
	return c.Cipher.Rewrap(ctx, items)
}

func TestRewrapResumesAfterCancelledRun(t *testing.T) {
	f := newFixture()
	conns := f.seed(t, 10, nil)
	if _, err := f.svc.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	counting := &countingCipher{Cipher: f.cipher}
	svc := keys.New(keys.Deps{Keys: f.cipher, Cipher: counting, Secrets: f.secrets})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	first, err := svc.Rewrap(ctx, 4, func(keys.Progress) { cancel() }) // the operator hits Ctrl-C
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Rewrap = %v, want context.Canceled", err)
	}
	if first.Done != 4 || first.Batches != 1 {
		t.Errorf("cancelled Rewrap progress = %+v, want one batch of 4 done", first)
	}
	f.wantReport(t, keys.Report{Latest: 2, MinDecryption: 1, Versions: []keys.VersionUsage{
		{Version: 1, Secrets: 6}, {Version: 2, Secrets: 4},
	}})

	second, err := svc.Rewrap(t.Context(), 4, nil)
	if err != nil {
		t.Fatalf("resumed Rewrap: %v", err)
	}
	if diff := cmp.Diff(second, keys.Progress{TargetVersion: 2, Batches: 2, Done: 6}); diff != "" {
		t.Errorf("resumed Rewrap (-got +want):\n%s", diff)
	}
	if counting.items != 10 {
		t.Errorf("the two runs rewrapped %d secrets, want each of the 10 once", counting.items)
	}
	f.wantOpens(t, conns)
}

// racingCipher lets a token refresh replace one connection's token set while its rewrap is in
// flight, between the job's read and its compare-and-swap.
type racingCipher struct {
	*memory.Cipher
	refresh func(ctx context.Context)
	once    sync.Once
}

func (c *racingCipher) Rewrap(ctx context.Context, items []ports.RewrapItem) ([]ports.RewrapResult, error) {
	out, err := c.Cipher.Rewrap(ctx, items)
	c.once.Do(func() { c.refresh(ctx) })
	return out, err
}

func TestConcurrentRefreshWinsOverRewrap(t *testing.T) {
	f := newFixture()
	conns := f.seed(t, 5, nil)
	if _, err := f.svc.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	target := conns[2]
	const refreshed = "token-set-after-refresh"
	racing := &racingCipher{Cipher: f.cipher, refresh: func(ctx context.Context) {
		_, err := f.conns.Update(ctx, target.ID, func(c *domain.Connection) error {
			sealed, err := f.cipher.Seal(ctx, c.TokenBinding(), domain.NewSecret(refreshed))
			c.Tokens = sealed
			return err
		})
		if err != nil {
			t.Errorf("refresh: %v", err)
		}
	}}
	svc := keys.New(keys.Deps{Keys: f.cipher, Cipher: racing, Secrets: f.secrets})

	got, err := svc.Rewrap(t.Context(), 10, nil)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if diff := cmp.Diff(got, keys.Progress{TargetVersion: 2, Batches: 1, Done: 4, Skipped: 1}); diff != "" {
		t.Errorf("Rewrap (-got +want):\n%s", diff)
	}
	f.plain[target.ID] = refreshed // the refresh's value survives, not the rewrap's
	f.wantOpens(t, conns)
}

func TestRewrapCountsItemFailuresAndGoesOn(t *testing.T) {
	f := newFixture()
	good := f.seed(t, 3, nil)
	f.seed(t, 1, memory.NewCipher()) // sealed under a key this backend never had
	if _, err := f.svc.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.Rewrap(t.Context(), 2, nil)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if diff := cmp.Diff(got, keys.Progress{TargetVersion: 2, Batches: 2, Done: 3, Failed: 1, Remaining: 1}); diff != "" {
		t.Errorf("Rewrap (-got +want):\n%s", diff)
	}
	f.wantOpens(t, good)
	if err := f.svc.Retire(t.Context(), 2); !errors.Is(err, keys.ErrKeyVersionInUse) {
		t.Errorf("Retire with a failed secret left = %v, want ErrKeyVersionInUse", err)
	}
}

// downCipher is a backend that has gone away.
type downCipher struct{ *memory.Cipher }

func (downCipher) Rewrap(context.Context, []ports.RewrapItem) ([]ports.RewrapResult, error) {
	return nil, domain.ErrUnavailable
}

func TestRewrapStopsWhenTheBackendIsDown(t *testing.T) {
	f := newFixture()
	f.seed(t, 3, nil)
	if _, err := f.svc.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	svc := keys.New(keys.Deps{Keys: f.cipher, Cipher: downCipher{f.cipher}, Secrets: f.secrets})
	got, err := svc.Rewrap(t.Context(), 0, nil)
	if !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Rewrap = %v, want ErrUnavailable", err)
	}
	if diff := cmp.Diff(got, keys.Progress{TargetVersion: 2, Remaining: 3}); diff != "" {
		t.Errorf("Rewrap (-got +want):\n%s", diff)
	}
}

func TestRewrapBatchSizeLimits(t *testing.T) {
	f := newFixture()
	for _, bad := range []int{-1, keys.MaxBatchSize + 1} {
		if _, err := f.svc.Rewrap(t.Context(), bad, nil); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("Rewrap(batch %d) = %v, want an invalid-argument error", bad, err)
		}
	}
}

func TestReportListsRetiredVersionsStillInUse(t *testing.T) {
	f := newFixture()
	f.seed(t, 1, nil)
	for range 2 {
		if _, err := f.svc.Rotate(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// The emergency path: the backend retired version 1 behind the service's back.
	if err := f.cipher.Retire(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	f.wantReport(t, keys.Report{Latest: 3, MinDecryption: 2, Versions: []keys.VersionUsage{
		{Version: 1, Secrets: 1, Retired: true}, {Version: 2}, {Version: 3},
	}})
}
