package contract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// VehicleCondition is a car's situation as a VehicleAPIControl sets it.
type VehicleCondition string

// The conditions every upstream double supports.
const (
	ConditionParked      VehicleCondition = "PARKED"
	ConditionAsleep      VehicleCondition = "ASLEEP"
	ConditionUnreachable VehicleCondition = "UNREACHABLE"
	ConditionDriving     VehicleCondition = "DRIVING"
)

// VehicleCall names the upstream call a failure is injected into.
type VehicleCall string

// The calls failures can be injected into.
const (
	CallToken      VehicleCall = "token"
	CallLockStatus VehicleCall = "lock_status"
	CallSecurity   VehicleCall = "security"
)

// VehicleAPIControl drives the upstream behind a ports.VehicleAPI under test: the in-memory fake
// itself, or the simulator behind the real adapter. Its clock is the one the API under test
// reads. Methods fail t on misuse.
type VehicleAPIControl interface {
	// Now and Advance read and move the shared clock.
	Now() time.Time
	Advance(d time.Duration)
	// Client is the client id and redirect URI the API puts in Connect URLs.
	Client() (clientID, redirectURI string)
	// CreateUser adds a Smartcar user with the vehicles (ids assigned, cars parked and locked).
	CreateUser(t *testing.T, vehicles ...domain.VehicleAttributes) (userID string, vehicleIDs []string)
	// Consent completes Connect at authorizeURL as userID and returns the code.
	Consent(t *testing.T, authorizeURL, userID string) domain.Secret
	SetCondition(t *testing.T, vehicleID string, c VehicleCondition)
	RateLimit(t *testing.T, vehicleID string, retryAfter time.Duration)
	// FailNext makes the next call of c fail with an upstream answer of status, before any effect.
	FailNext(t *testing.T, c VehicleCall, status int)
	// HangNextCommand makes the next lock command reach the car and then never be answered; the
	// channel closes once the car has executed it.
	HangNextCommand(t *testing.T) <-chan struct{}
	RevokeConsent(t *testing.T, userID string)
	// Counts reports successful code exchanges and refreshes.
	Counts() (codeExchanges, refreshes int)
	// Car reports the car's lock state and how many commands reached it.
	Car(t *testing.T, vehicleID string) (locked bool, commands int)
	RefreshGrace() time.Duration
}

// NewVehicleAPIFunc returns a fresh API and its upstream with no users, cleaned up through t.
type NewVehicleAPIFunc func(t *testing.T) (ports.VehicleAPI, VehicleAPIControl)

// VehicleAPI runs the sentences of ports.VehicleAPI against an implementation; the in-memory fake
// and the Smartcar adapter talking to the simulator over HTTP both pass it.
func VehicleAPI(t *testing.T, newAPI NewVehicleAPIFunc) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, v *vehicleEnv)
	}{
		{"AuthorizeURL", testAuthorizeURL},
		{"ExchangeCode/OnceOnly", testExchangeOnce},
		{"ExchangeCode/Expired", testExchangeExpired},
		{"ExchangeCode/MakeAndSingleSelect", testConnectFilters},
		{"Refresh/RotatesWithGrace", testRefreshRotates},
		{"Refresh/UnknownOrExpired", testRefreshInvalid},
		{"Reads", testReads},
		{"Vehicles/AllPages", testVehiclePages},
		{"Permissions/WhatWasGranted", testPermissions},
		{"Security/LockUnlock", testLockUnlock},
		{"Disconnect", testDisconnect},
		{"VehicleState", testVehicleState},
		{"RateLimited", testRateLimited},
		{"ServerErrors", testServerErrors},
		{"Security/HangAfterSend", testHangAfterSend},
		{"AccessExpired", testAccessExpired},
		{"ConsentRevoked", testConsentRevoked},
		{"NoTokenInErrorsOrPrints", testNoTokenLeak},
		{"Concurrent", testVehicleConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			api, ctl := newAPI(t)
			tc.run(t, &vehicleEnv{api: api, ctl: ctl, users: map[string]string{}})
		})
	}
}

// vehicleEnv is one subtest's API and upstream.
type vehicleEnv struct {
	api ports.VehicleAPI
	ctl VehicleAPIControl

	mu    sync.Mutex
	users map[string]string // access token → Smartcar user id, for grant
}

// remember notes whose grant ts is.
func (v *vehicleEnv) remember(user string, ts domain.TokenSet) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.users[ts.AccessToken.Reveal()] = user
}

// grant is what the vehicle calls act under for the token set ts of a linked user.
func (v *vehicleEnv) grant(ts domain.TokenSet) domain.VehicleGrant {
	v.mu.Lock()
	defer v.mu.Unlock()
	return domain.VehicleGrant{SmartcarUserID: v.users[ts.AccessToken.Reveal()], Access: ts.AccessToken}
}

var (
	carTesla = domain.VehicleAttributes{Make: "TESLA", Model: "Model 3", Year: 2023}
	carFord  = domain.VehicleAttributes{Make: "FORD", Model: "Mustang Mach-E", Year: 2022}
)

// link creates a user with cars, connects them and returns the ids and the first token set.
func (v *vehicleEnv) link(t *testing.T, cars ...domain.VehicleAttributes) (string, []string, domain.TokenSet) {
	t.Helper()
	if len(cars) == 0 {
		cars = []domain.VehicleAttributes{carTesla, carFord}
	}
	user, ids := v.ctl.CreateUser(t, cars...)
	code := v.ctl.Consent(t, v.api.AuthorizeURL(domain.NewOpaqueToken(), ports.ConnectOptions{}), user)
	ts, err := v.api.ExchangeCode(t.Context(), code)
	if err != nil {
		t.Fatalf("ExchangeCode: %v", err)
	}
	v.remember(user, ts)
	return user, ids, ts
}

// wantUpstream checks err's domain error and its retry bits.
func wantUpstream(t *testing.T, what string, err error, target *domain.Error, temporary, mayHaveExecuted bool) *domain.UpstreamError {
	t.Helper()
	wantErr(t, err, target)
	u := domain.AsUpstream(err)
	if u == nil {
		t.Fatalf("%s: %v is not a *domain.UpstreamError", what, err)
	}
	if u.Temporary() != temporary || u.MayHaveExecuted() != mayHaveExecuted {
		t.Errorf("%s: Temporary, MayHaveExecuted = %v, %v; want %v, %v (%v)", what, u.Temporary(), u.MayHaveExecuted(),
			temporary, mayHaveExecuted, err)
	}
	return u
}

func testAuthorizeURL(t *testing.T, v *vehicleEnv) {
	state := domain.NewSecret("state-" + randomHex(8))
	clientID, redirect := v.ctl.Client()
	check := func(o ports.ConnectOptions, want map[string]string) {
		t.Helper()
		u, err := url.Parse(v.api.AuthorizeURL(state, o))
		if err != nil || !strings.HasSuffix(u.Path, "/oauth/authorize") {
			t.Fatalf("AuthorizeURL = %v (%v), want a Connect authorize url", u, err)
		}
		q := u.Query()
		got := map[string]string{}
		for k := range want {
			got[k] = q.Get(k)
		}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("query (-got +want):\n%s", diff)
		}
		if !slices.Contains([]string{"live", "test", "simulated"}, q.Get("mode")) {
			t.Errorf("mode = %q", q.Get("mode"))
		}
		scopes := strings.Fields(q.Get("scope"))
		for _, s := range domain.DefaultConnectScopes() {
			if !slices.Contains(scopes, s) {
				t.Errorf("scope %q lacks %q", q.Get("scope"), s)
			}
		}
	}
	base := map[string]string{"response_type": "code", "client_id": clientID, "redirect_uri": redirect,
		"state": state.Reveal(), "approval_prompt": "auto", "make": "", "single_select": ""}
	check(ports.ConnectOptions{}, base)
	base["make"], base["single_select"], base["approval_prompt"] = "TESLA", "true", "force"
	check(ports.ConnectOptions{Make: "tesla", SingleSelect: true, ForceApproval: true}, base)
}

func testExchangeOnce(t *testing.T, v *vehicleEnv) {
	user, _ := v.ctl.CreateUser(t, carTesla)
	code := v.ctl.Consent(t, v.api.AuthorizeURL(domain.NewOpaqueToken(), ports.ConnectOptions{}), user)
	at := v.ctl.Now()
	ts, err := v.api.ExchangeCode(t.Context(), code)
	if err != nil {
		t.Fatalf("ExchangeCode: %v", err)
	}
	if ts.AccessToken.Empty() || ts.RefreshToken.Empty() || ts.AccessToken.Reveal() == ts.RefreshToken.Reveal() {
		t.Error("token set lacks two distinct tokens")
	}
	if !ts.AccessExpiresAt.Equal(at.Add(domain.VehicleAccessTokenLifetime)) || !ts.RefreshExpiresAt.Equal(at.Add(domain.VehicleRefreshTokenLifetime)) {
		t.Errorf("expiries %v, %v; want now+2h, now+60d", ts.AccessExpiresAt.Sub(at), ts.RefreshExpiresAt.Sub(at))
	}
	_, err = v.api.ExchangeCode(t.Context(), code)
	wantUpstream(t, "reused code", err, domain.ErrConnectCodeInvalid, false, false)
	if n, _ := v.ctl.Counts(); n != 1 {
		t.Errorf("code exchanges = %d, want 1", n)
	}
	if got, err := v.api.User(t.Context(), ts.AccessToken); err != nil || got != user {
		t.Errorf("User = %q, %v; want %q", got, err, user)
	}
}

func testExchangeExpired(t *testing.T, v *vehicleEnv) {
	user, _ := v.ctl.CreateUser(t, carTesla)
	code := v.ctl.Consent(t, v.api.AuthorizeURL(domain.NewOpaqueToken(), ports.ConnectOptions{}), user)
	v.ctl.Advance(domain.ConnectCodeLifetime)
	_, err := v.api.ExchangeCode(t.Context(), code)
	wantUpstream(t, "expired code", err, domain.ErrConnectCodeInvalid, false, false)
	_, err = v.api.ExchangeCode(t.Context(), domain.NewSecret("unknown-"+randomHex(8)))
	wantUpstream(t, "unknown code", err, domain.ErrConnectCodeInvalid, false, false)
}

func testConnectFilters(t *testing.T, v *vehicleEnv) {
	user, ids := v.ctl.CreateUser(t, carTesla, carFord, carTesla)
	for _, tc := range []struct {
		opts ports.ConnectOptions
		want []string
	}{
		{ports.ConnectOptions{Make: "ford"}, ids[1:2]},
		{ports.ConnectOptions{Make: "TESLA"}, []string{ids[0], ids[2]}},
		{ports.ConnectOptions{SingleSelect: true}, ids[:1]},
	} {
		code := v.ctl.Consent(t, v.api.AuthorizeURL(domain.NewOpaqueToken(), tc.opts), user)
		ts, err := v.api.ExchangeCode(t.Context(), code)
		if err != nil {
			t.Fatalf("ExchangeCode: %v", err)
		}
		got, err := v.api.Vehicles(t.Context(), ts.AccessToken)
		if err != nil {
			t.Fatalf("Vehicles: %v", err)
		}
		if diff := cmp.Diff(got, tc.want); diff != "" {
			t.Errorf("%+v: vehicles (-got +want):\n%s", tc.opts, diff)
		}
	}
}

func testRefreshRotates(t *testing.T, v *vehicleEnv) {
	_, _, ts1 := v.link(t)
	v.ctl.Advance(time.Hour)
	at := v.ctl.Now()
	ts2, err := v.api.Refresh(t.Context(), ts1.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if ts2.RefreshToken.Reveal() == ts1.RefreshToken.Reveal() || ts2.AccessToken.Reveal() == ts1.AccessToken.Reveal() {
		t.Error("Refresh did not rotate both tokens")
	}
	if !ts2.AccessExpiresAt.Equal(at.Add(domain.VehicleAccessTokenLifetime)) || !ts2.RefreshExpiresAt.Equal(at.Add(domain.VehicleRefreshTokenLifetime)) {
		t.Errorf("expiries %v, %v after refresh; want now+2h, now+60d", ts2.AccessExpiresAt.Sub(at), ts2.RefreshExpiresAt.Sub(at))
	}
	for name, a := range map[string]domain.Secret{"new": ts2.AccessToken, "old, unexpired": ts1.AccessToken} {
		if _, err := v.api.User(t.Context(), a); err != nil {
			t.Errorf("User with the %s access token: %v", name, err)
		}
	}
	v.ctl.Advance(v.ctl.RefreshGrace() - time.Second)
	if _, err := v.api.Refresh(t.Context(), ts1.RefreshToken); err != nil {
		t.Errorf("reusing the old refresh token inside the grace: %v", err)
	}
	v.ctl.Advance(time.Second)
	_, err = v.api.Refresh(t.Context(), ts1.RefreshToken)
	wantUpstream(t, "old refresh token after the grace", err, domain.ErrReauthRequired, false, false)
	if !domain.RequiresReconnect(err) {
		t.Error("RequiresReconnect(dead refresh token) = false")
	}
	if _, err := v.api.Refresh(t.Context(), ts2.RefreshToken); err != nil {
		t.Errorf("the new refresh token: %v", err)
	}
	if _, n := v.ctl.Counts(); n != 3 {
		t.Errorf("refreshes = %d, want 3", n)
	}
}

func testRefreshInvalid(t *testing.T, v *vehicleEnv) {
	_, err := v.api.Refresh(t.Context(), domain.NewSecret("unknown-"+randomHex(16)))
	wantUpstream(t, "unknown refresh token", err, domain.ErrReauthRequired, false, false)
	_, _, ts := v.link(t)
	v.ctl.Advance(domain.VehicleRefreshTokenLifetime)
	_, err = v.api.Refresh(t.Context(), ts.RefreshToken)
	wantUpstream(t, "refresh token after 60 days", err, domain.ErrReauthRequired, false, false)
}

func testReads(t *testing.T, v *vehicleEnv) {
	_, ids, ts := v.link(t, carTesla, carFord)
	for i, want := range []domain.VehicleAttributes{carTesla, carFord} {
		want.ID = ids[i]
		got, err := v.api.Attributes(t.Context(), v.grant(ts), ids[i])
		if err != nil {
			t.Fatalf("Attributes: %v", err)
		}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("Attributes (-got +want):\n%s", diff)
		}
	}
	st, err := v.api.LockStatus(t.Context(), v.grant(ts), ids[0])
	if err != nil {
		t.Fatalf("LockStatus: %v", err)
	}
	if st.Locked == nil || !*st.Locked || st.ObservedAt.IsZero() || st.FetchedAt.IsZero() || st.ObservedAt.After(st.FetchedAt) {
		t.Errorf("LockStatus = %+v; want locked, observed no later than fetched", st)
	}
}

// Permissions reports what the owner granted (here the default scopes, without the required:
// prefix), sorted, for every vehicle of the grant, and refuses a vehicle the grant does not cover.
func testPermissions(t *testing.T, v *vehicleEnv) {
	_, ids, ts := v.link(t, carTesla, carFord)
	want := []domain.VehiclePermission{domain.PermissionControlSecurity, domain.PermissionReadSecurity, domain.PermissionReadVehicleInfo}
	for _, id := range ids {
		got, err := v.api.Permissions(t.Context(), ts.AccessToken, id)
		if err != nil {
			t.Fatalf("Permissions: %v", err)
		}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("Permissions (-got +want):\n%s", diff)
		}
	}
	_, others, _ := v.link(t, carTesla)
	if _, err := v.api.Permissions(t.Context(), ts.AccessToken, others[0]); !errors.Is(err, domain.ErrConsentRevoked) {
		t.Errorf("Permissions of a vehicle the grant does not cover = %v, want ErrConsentRevoked", err)
	}
}

func testVehiclePages(t *testing.T, v *vehicleEnv) {
	cars := make([]domain.VehicleAttributes, 23)
	for i := range cars {
		cars[i] = domain.VehicleAttributes{Make: "FORD", Model: fmt.Sprintf("Model %d", i), Year: 2000 + i}
	}
	_, ids, ts := v.link(t, cars...)
	got, err := v.api.Vehicles(t.Context(), ts.AccessToken)
	if err != nil {
		t.Fatalf("Vehicles: %v", err)
	}
	if diff := cmp.Diff(got, ids); diff != "" {
		t.Errorf("Vehicles (-got +want):\n%s", diff)
	}
}

func testLockUnlock(t *testing.T, v *vehicleEnv) {
	_, ids, ts := v.link(t)
	for i, a := range []domain.SecurityAction{domain.SecurityUnlock, domain.SecurityLock, domain.SecurityUnlock} {
		id, err := v.api.Security(t.Context(), v.grant(ts), ids[0], a)
		if err != nil || id == "" {
			t.Fatalf("Security(%s) = %q, %v; want a request id", a, id, err)
		}
		locked, n := v.ctl.Car(t, ids[0])
		if want := a == domain.SecurityLock; locked != want || n != i+1 {
			t.Errorf("after %s: locked %v, commands %d; want %v, %d", a, locked, n, want, i+1)
		}
		st, err := v.api.LockStatus(t.Context(), v.grant(ts), ids[0])
		if err != nil || st.Locked == nil || *st.Locked != locked {
			t.Errorf("LockStatus after %s = %+v, %v", a, st, err)
		}
	}
	_, err := v.api.Security(t.Context(), v.grant(ts), ids[0], "HONK")
	if domain.KindOf(err) != domain.KindInvalid {
		t.Errorf("Security(HONK) = %v, want a KindInvalid error", err)
	}
	if _, n := v.ctl.Car(t, ids[0]); n != 3 {
		t.Errorf("commands = %d after a refused action, want 3", n)
	}
	if _, n := v.ctl.Car(t, ids[1]); n != 0 {
		t.Errorf("the other car got %d commands", n)
	}
}

func testDisconnect(t *testing.T, v *vehicleEnv) {
	_, ids, ts := v.link(t)
	if err := v.api.Disconnect(t.Context(), v.grant(ts), ids[0]); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	got, err := v.api.Vehicles(t.Context(), ts.AccessToken)
	if err != nil || !slices.Equal(got, ids[1:]) {
		t.Errorf("Vehicles after Disconnect = %v, %v; want %v", got, err, ids[1:])
	}
	_, err = v.api.LockStatus(t.Context(), v.grant(ts), ids[0])
	wantUpstream(t, "disconnected vehicle", err, domain.ErrConsentRevoked, false, false)
	if !domain.RequiresReconnect(err) {
		t.Error("RequiresReconnect(disconnected vehicle) = false")
	}
	if _, err := v.api.LockStatus(t.Context(), v.grant(ts), ids[1]); err != nil {
		t.Errorf("LockStatus of the vehicle still connected: %v", err)
	}
}

func testVehicleState(t *testing.T, v *vehicleEnv) {
	_, ids, ts := v.link(t, carTesla)
	for _, tc := range []struct {
		c        VehicleCondition
		want     *domain.Error
		readsToo bool
	}{
		{ConditionAsleep, domain.ErrVehicleAsleep, true},
		{ConditionUnreachable, domain.ErrVehicleUnreachable, true},
		{ConditionDriving, domain.ErrVehicleInMotion, false},
	} {
		v.ctl.SetCondition(t, ids[0], tc.c)
		_, err := v.api.Security(t.Context(), v.grant(ts), ids[0], domain.SecurityUnlock)
		u := wantUpstream(t, string(tc.c)+" command", err, tc.want, true, false)
		if u.RequestID == "" {
			t.Errorf("%s: no upstream request id", tc.c)
		}
		_, err = v.api.LockStatus(t.Context(), v.grant(ts), ids[0])
		if tc.readsToo {
			wantUpstream(t, string(tc.c)+" read", err, tc.want, true, false)
		} else if err != nil {
			t.Errorf("%s: LockStatus: %v", tc.c, err)
		}
	}
	if locked, n := v.ctl.Car(t, ids[0]); !locked || n != 0 {
		t.Errorf("refused commands reached the car: locked %v, commands %d", locked, n)
	}
	v.ctl.SetCondition(t, ids[0], ConditionParked)
	if _, err := v.api.Security(t.Context(), v.grant(ts), ids[0], domain.SecurityUnlock); err != nil {
		t.Errorf("Security once parked: %v", err)
	}
}

func testRateLimited(t *testing.T, v *vehicleEnv) {
	_, ids, ts := v.link(t, carTesla)
	v.ctl.RateLimit(t, ids[0], 90*time.Second)
	_, err := v.api.Security(t.Context(), v.grant(ts), ids[0], domain.SecurityLock)
	if u := wantUpstream(t, "rate-limited command", err, domain.ErrRateLimited, true, false); u.RetryAfter != 90*time.Second {
		t.Errorf("RetryAfter = %v, want 90s", u.RetryAfter)
	}
	_, err = v.api.LockStatus(t.Context(), v.grant(ts), ids[0])
	wantUpstream(t, "rate-limited read", err, domain.ErrRateLimited, true, false)
	v.ctl.Advance(90 * time.Second)
	if _, err := v.api.Security(t.Context(), v.grant(ts), ids[0], domain.SecurityLock); err != nil {
		t.Errorf("Security after Retry-After: %v", err)
	}
}

func testServerErrors(t *testing.T, v *vehicleEnv) {
	_, ids, ts := v.link(t, carTesla)
	for _, tc := range []struct {
		c               VehicleCall
		status          int
		want            *domain.Error
		mayHaveExecuted bool
	}{
		{CallSecurity, 500, domain.ErrUpstreamUnavailable, true},
		{CallSecurity, 502, domain.ErrUpstreamUnavailable, true},
		{CallSecurity, 503, domain.ErrUpstreamUnavailable, false},
		{CallSecurity, 429, domain.ErrRateLimited, false},
		{CallLockStatus, 500, domain.ErrUpstreamUnavailable, false},
		{CallToken, 500, domain.ErrUpstreamUnavailable, true},
		{CallToken, 503, domain.ErrUpstreamUnavailable, false},
	} {
		v.ctl.FailNext(t, tc.c, tc.status)
		var err error
		switch tc.c {
		case CallSecurity:
			_, err = v.api.Security(t.Context(), v.grant(ts), ids[0], domain.SecurityUnlock)
		case CallLockStatus:
			_, err = v.api.LockStatus(t.Context(), v.grant(ts), ids[0])
		case CallToken:
			_, err = v.api.Refresh(t.Context(), ts.RefreshToken)
		}
		wantUpstream(t, fmt.Sprintf("%s %d", tc.c, tc.status), err, tc.want, true, tc.mayHaveExecuted)
	}
	if locked, n := v.ctl.Car(t, ids[0]); !locked || n != 0 {
		t.Errorf("failed commands reached the car: locked %v, commands %d", locked, n)
	}
	if _, err := v.api.Refresh(t.Context(), ts.RefreshToken); err != nil {
		t.Errorf("Refresh after the failures: %v", err)
	}
}

func testHangAfterSend(t *testing.T, v *vehicleEnv) {
	_, ids, ts := v.link(t, carTesla)
	reached := v.ctl.HangNextCommand(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := v.api.Security(ctx, v.grant(ts), ids[0], domain.SecurityUnlock)
		done <- err
	}()
	<-reached
	cancel()
	err := <-done
	wantUpstream(t, "command without an answer", err, domain.ErrUpstreamTimeout, true, true)
	if u := domain.AsUpstream(err); u != nil && u.ShouldRetry() {
		t.Error("ShouldRetry() = true for a command that may have executed")
	}
	if locked, n := v.ctl.Car(t, ids[0]); locked || n != 1 {
		t.Errorf("car: locked %v, commands %d; want the unlock executed once", locked, n)
	}
}

// An expired user access token is refused by an API that authenticates as the user, until a
// refresh; one that authenticates as the application never looks at it.
func testAccessExpired(t *testing.T, v *vehicleEnv) {
	user, ids, ts := v.link(t, carTesla)
	v.ctl.Advance(domain.VehicleAccessTokenLifetime)
	_, err := v.api.LockStatus(t.Context(), v.grant(ts), ids[0])
	if !v.api.UserTokens() {
		if err != nil {
			t.Errorf("LockStatus with an application token after the user token expired: %v", err)
		}
		return
	}
	wantUpstream(t, "expired access token", err, domain.ErrReauthRequired, false, false)
	next, err := v.api.Refresh(t.Context(), ts.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	v.remember(user, next)
	if _, err := v.api.LockStatus(t.Context(), v.grant(next), ids[0]); err != nil {
		t.Errorf("LockStatus with the refreshed token: %v", err)
	}
}

func testConsentRevoked(t *testing.T, v *vehicleEnv) {
	user, ids, ts := v.link(t, carTesla)
	v.ctl.RevokeConsent(t, user)
	_, err := v.api.LockStatus(t.Context(), v.grant(ts), ids[0])
	if !domain.RequiresReconnect(err) {
		t.Errorf("LockStatus after revocation = %v, want a reconnect-class error", err)
	}
	_, err = v.api.Refresh(t.Context(), ts.RefreshToken)
	wantUpstream(t, "refresh after revocation", err, domain.ErrReauthRequired, false, false)
}

func testNoTokenLeak(t *testing.T, v *vehicleEnv) {
	user, ids, ts := v.link(t, carTesla)
	canary := domain.NewSecret("CANARY-" + randomHex(16))
	var errs []error
	_, err := v.api.Refresh(t.Context(), canary)
	errs = append(errs, err)
	_, err = v.api.ExchangeCode(t.Context(), canary)
	errs = append(errs, err)
	v.ctl.RevokeConsent(t, user)
	_, err = v.api.Refresh(t.Context(), ts.RefreshToken)
	errs = append(errs, err)
	_, err = v.api.Security(t.Context(), v.grant(ts), ids[0], domain.SecurityUnlock)
	errs = append(errs, err)
	var out strings.Builder
	log := slog.New(slog.NewJSONHandler(&out, nil))
	for _, err := range errs {
		if err == nil {
			t.Fatal("a call with a dead or unknown credential succeeded")
		}
		fmt.Fprintf(&out, "%v %+v %#v %s\n", err, err, err, err.Error())
		log.Error("call failed", "err", err, "upstream", domain.AsUpstream(err))
	}
	js, _ := json.Marshal(ts)
	fmt.Fprintf(&out, "%v %+v %#v %s\n", ts, ts, ts, js)
	log.Info("tokens", "set", ts)
	for _, s := range []domain.Secret{canary, ts.AccessToken, ts.RefreshToken} {
		if strings.Contains(out.String(), s.Reveal()) {
			t.Errorf("a token value appears in an error, a print or a log line:\n%s", out.String())
		}
	}
}

func testVehicleConcurrent(t *testing.T, v *vehicleEnv) {
	_, ids, ts := v.link(t)
	errs := race(parallelism, func(i int) error {
		switch i % 3 {
		case 0:
			_, err := v.api.LockStatus(t.Context(), v.grant(ts), ids[i%len(ids)])
			return err
		case 1:
			_, err := v.api.Vehicles(t.Context(), ts.AccessToken)
			return err
		default:
			_, err := v.api.Refresh(t.Context(), ts.RefreshToken) // inside the grace, every one succeeds
			return err
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Errorf("concurrent calls: %v", err)
	}
}
