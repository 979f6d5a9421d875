package apple_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/apple"
	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/domain"
)

// verifyOK fails the test unless a fresh token for the current clock verifies.
func (e *env) verifyOK(t *testing.T, o applesim.MintOptions) {
	t.Helper()
	if o.IssuedAt.IsZero() {
		o.IssuedAt = e.clock.Now()
	}
	if _, err := e.v.Verify(context.Background(), e.mint(t, o)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

// wantFetches fails the test when the simulator saw a different number of JWKS requests.
func (e *env) wantFetches(t *testing.T, want int64) {
	t.Helper()
	if got := e.fetches(); got != want {
		t.Errorf("JWKS fetches = %d, want %d", got, want)
	}
}

func TestKeysFetchedLazilyAndCachedForTTL(t *testing.T) {
	e := newEnv(t, nil)
	e.wantFetches(t, 0)
	e.verifyOK(t, applesim.MintOptions{})
	e.wantFetches(t, 1)
	e.clock.Advance(apple.DefaultCacheTTL - time.Second)
	e.verifyOK(t, applesim.MintOptions{})
	e.wantFetches(t, 1)
	e.clock.Advance(time.Second)
	e.verifyOK(t, applesim.MintOptions{})
	e.wantFetches(t, 2)
}

func TestRotationPickedUpOnUnknownKID(t *testing.T) {
	e := newEnv(t, nil)
	oldKID := e.sim.CurrentKID()
	e.verifyOK(t, applesim.MintOptions{})

	e.clock.Advance(time.Minute)
	newKID, err := e.sim.RotateKeys()
	if err != nil {
		t.Fatal(err)
	}
	e.verifyOK(t, applesim.MintOptions{KID: newKID})
	e.wantFetches(t, 2)
	// Tokens from keys still published keep working without another fetch.
	e.verifyOK(t, applesim.MintOptions{})
	e.wantFetches(t, 2)
	if oldKID == newKID {
		t.Fatal("rotation kept the kid")
	}
}

func TestRotationWithinRefetchIntervalWaitsForIt(t *testing.T) {
	e := newEnv(t, nil)
	e.verifyOK(t, applesim.MintOptions{})
	newKID, err := e.sim.RotateKeys()
	if err != nil {
		t.Fatal(err)
	}
	tok := e.mint(t, applesim.MintOptions{KID: newKID})
	if _, err := e.v.Verify(context.Background(), tok); !errors.Is(err, domain.ErrInvalidIdentityToken) {
		t.Fatalf("Verify inside the interval: error = %v, want unknown kid rejection", err)
	}
	e.wantFetches(t, 1)
	e.clock.Advance(apple.DefaultUnknownKIDRefetchInterval)
	if _, err := e.v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("Verify after the interval: %v", err)
	}
	e.wantFetches(t, 2)
}

func TestUnknownKIDRefetchIsRateLimited(t *testing.T) {
	e := newEnv(t, nil)
	e.verifyOK(t, applesim.MintOptions{})
	e.clock.Advance(time.Minute)
	for i := range 100 {
		tok := e.mint(t, applesim.MintOptions{KID: fmt.Sprintf("Unknown%03d", i), IssuedAt: e.clock.Now()})
		_, err := e.v.Verify(context.Background(), tok)
		if !errors.Is(err, domain.ErrInvalidIdentityToken) || !strings.Contains(err.Error(), "signing key id is unknown") {
			t.Fatalf("token %d: error = %v, want unknown kid", i, err)
		}
		if i%10 == 9 {
			e.clock.Advance(time.Second) // 10 s in total, inside the 30 s interval
		}
	}
	e.wantFetches(t, 2) // the warm-up and exactly one refetch
	e.clock.Advance(apple.DefaultUnknownKIDRefetchInterval)
	tok := e.mint(t, applesim.MintOptions{KID: "StillUnknwn", IssuedAt: e.clock.Now()})
	if _, err := e.v.Verify(context.Background(), tok); !errors.Is(err, domain.ErrInvalidIdentityToken) {
		t.Fatalf("Verify: error = %v, want unknown kid", err)
	}
	e.wantFetches(t, 3)
}

func TestOutageServesLastGoodKeys(t *testing.T) {
	for _, f := range []applesim.Failure{applesim.FailJWKSServerError, applesim.FailJWKSMalformed, applesim.FailJWKSEmpty} {
		t.Run(string(f), func(t *testing.T) {
			e := newEnv(t, nil)
			e.verifyOK(t, applesim.MintOptions{})
			e.sim.Fail(f)

			e.clock.Advance(apple.DefaultCacheTTL + time.Minute)
			e.verifyOK(t, applesim.MintOptions{})
			e.wantFetches(t, 2) // the refresh was tried and failed
			e.verifyOK(t, applesim.MintOptions{})
			e.wantFetches(t, 2) // and is not retried on every request

			e.clock.Advance(apple.DefaultMaxStale)
			_, err := e.v.Verify(context.Background(), e.mint(t, applesim.MintOptions{IssuedAt: e.clock.Now()}))
			if !errors.Is(err, domain.ErrUnavailable) || errors.Is(err, domain.ErrInvalidIdentityToken) {
				t.Fatalf("Verify past MaxStale: error = %v, want only unavailable", err)
			}

			e.sim.Fail(applesim.FailNone)
			e.clock.Advance(apple.DefaultUnknownKIDRefetchInterval)
			e.verifyOK(t, applesim.MintOptions{})
		})
	}
}

func TestUnreachableWithNoKeysIsUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	e.sim.Fail(applesim.FailJWKSServerError)
	for range 3 {
		_, err := e.v.Verify(context.Background(), e.mint(t, applesim.MintOptions{}))
		if !errors.Is(err, domain.ErrUnavailable) || errors.Is(err, domain.ErrInvalidIdentityToken) {
			t.Fatalf("Verify: error = %v, want only unavailable", err)
		}
	}
	e.wantFetches(t, 1) // retries wait for the interval
	e.sim.Fail(applesim.FailNone)
	e.clock.Advance(apple.DefaultUnknownKIDRefetchInterval)
	e.verifyOK(t, applesim.MintOptions{})
	e.wantFetches(t, 2)
}

func TestHangingJWKSTimesOut(t *testing.T) {
	e := newEnv(t, func(c *apple.Config) { c.HTTPTimeout = 100 * time.Millisecond })
	e.sim.Fail(applesim.FailJWKSHang)
	_, err := e.v.Verify(context.Background(), e.mint(t, applesim.MintOptions{}))
	if !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Verify: error = %v, want unavailable", err)
	}
}

func TestCallerCancellationReturnsPromptly(t *testing.T) {
	e := newEnv(t, nil)
	e.sim.Fail(applesim.FailJWKSHang)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.v.Verify(ctx, e.mint(t, applesim.MintOptions{}))
	if !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Verify: error = %v, want unavailable", err)
	}
}

func TestConcurrentMissesMakeOneFetch(t *testing.T) {
	e := newEnv(t, nil)
	const n = 64
	run := func(tok string) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		gate := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-gate
				_, err := e.v.Verify(context.Background(), tok)
				errs <- err
			})
		}
		close(gate)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
		}
	}
	run(e.mint(t, applesim.MintOptions{})) // cold cache
	e.wantFetches(t, 1)

	e.clock.Advance(time.Minute)
	kid, err := e.sim.RotateKeys()
	if err != nil {
		t.Fatal(err)
	}
	run(e.mint(t, applesim.MintOptions{KID: kid, IssuedAt: e.clock.Now()})) // unknown kid
	e.wantFetches(t, 2)
}

func TestRedirectsMayNotLeaveTheHost(t *testing.T) {
	e := newEnv(t, nil)
	other := httptest.NewServer(http.RedirectHandler(e.srv.URL+"/apple/auth/keys", http.StatusFound))
	t.Cleanup(other.Close)
	same := http.NewServeMux()
	same.Handle("/old", http.RedirectHandler("/apple/auth/keys", http.StatusMovedPermanently))
	same.Handle("/apple/", e.srv.Config.Handler)
	sameSrv := httptest.NewServer(same)
	t.Cleanup(sameSrv.Close)

	tests := []struct {
		name    string
		url     string
		wantErr error
	}{
		{"other host refused", other.URL + "/keys", domain.ErrUnavailable},
		{"same host followed", sameSrv.URL + "/old", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := apple.New(apple.Config{JWKSURL: tt.url, Audiences: []string{phoneAud}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			v.SetNow(e.clock.Now)
			_, err = v.Verify(context.Background(), e.mint(t, applesim.MintOptions{}))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify: error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestOversizedJWKSIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", 70<<10) + `"}`))
	}))
	t.Cleanup(big.Close)
	v, err := apple.New(apple.Config{JWKSURL: big.URL, Audiences: []string{phoneAud}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v.SetNow(e.clock.Now)
	if _, err := v.Verify(context.Background(), e.mint(t, applesim.MintOptions{})); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Verify: error = %v, want unavailable", err)
	}
}
