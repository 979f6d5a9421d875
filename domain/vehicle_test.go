package domain_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/domain"
)

func canaryTokens() domain.TokenSet {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	return domain.TokenSet{AccessToken: domain.NewSecret("ACCESS-CANARY-1f2e"), RefreshToken: domain.NewSecret("REFRESH-CANARY-3d4c"),
		AccessExpiresAt: at.Add(domain.VehicleAccessTokenLifetime), RefreshExpiresAt: at.Add(domain.VehicleRefreshTokenLifetime)}
}

func TestTokenSetNeverPrintsTokens(t *testing.T) {
	ts := canaryTokens()
	var out bytes.Buffer
	js, _ := json.Marshal(ts)
	fmt.Fprintf(&out, "%v %+v %#v %s %q %x\n%s\n", ts, ts, ts, ts, ts, ts, js)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("t", "set", ts)
	slog.New(slog.NewTextHandler(&out, nil)).Info("t", "set", ts, "ptr", &ts)
	fmt.Fprint(&out, ts.Plaintext())
	if s := out.String(); strings.Contains(s, "CANARY") {
		t.Errorf("a token escaped:\n%s", s)
	}
	if !strings.Contains(out.String(), `"access_len":18`) {
		t.Errorf("slog output lacks the token lengths:\n%s", out.String())
	}
}

func TestTokenSetPlaintextRoundTrip(t *testing.T) {
	ts := canaryTokens()
	got, err := domain.ParseTokenSet(ts.Plaintext())
	if err != nil {
		t.Fatal(err)
	}
	reveal := func(t domain.TokenSet) []any {
		return []any{t.AccessToken.Reveal(), t.RefreshToken.Reveal(), t.AccessExpiresAt, t.RefreshExpiresAt}
	}
	if diff := cmp.Diff(reveal(got), reveal(ts)); diff != "" {
		t.Errorf("(-got +want):\n%s", diff)
	}
	for _, bad := range []string{"", "null", `{"v":2,"access_token":"a","refresh_token":"r"}`, `{"v":1,"access_token":"ACCESS-CANARY"}`, "ACCESS-CANARY"} {
		if _, err := domain.ParseTokenSet(domain.NewSecret(bad)); err == nil || strings.Contains(err.Error(), "CANARY") {
			t.Errorf("ParseTokenSet(%q) = %v; want an error that quotes nothing", bad, err)
		}
	}
}

func TestTokenSetValidity(t *testing.T) {
	ts := canaryTokens()
	exp := ts.AccessExpiresAt
	got := []bool{
		ts.AccessValidAt(exp.Add(-6*time.Minute), 5*time.Minute), ts.AccessValidAt(exp.Add(-5*time.Minute), 5*time.Minute),
		ts.RefreshValidAt(ts.RefreshExpiresAt.Add(-time.Second)), ts.RefreshValidAt(ts.RefreshExpiresAt),
		domain.TokenSet{}.AccessValidAt(time.Time{}, 0), domain.TokenSet{}.RefreshValidAt(time.Time{}),
	}
	if diff := cmp.Diff(got, []bool{true, false, true, false, false, false}); diff != "" {
		t.Errorf("(-got +want):\n%s", diff)
	}
}

func TestSecurityActionsAndScopes(t *testing.T) {
	for in, want := range map[string]domain.SecurityAction{"lock": domain.SecurityLock, "UNLOCK": domain.SecurityUnlock, "Unlock": domain.SecurityUnlock} {
		if got, err := domain.ParseSecurityAction(in); err != nil || got != want {
			t.Errorf("ParseSecurityAction(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "honk", "LOCK ", "start"} {
		if _, err := domain.ParseSecurityAction(in); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("ParseSecurityAction(%q) = %v, want KindInvalid", in, err)
		}
	}
	if diff := cmp.Diff(domain.DefaultConnectScopes(), []string{"required:control_security", "read_security", "read_vehicle_info"}); diff != "" {
		t.Errorf("scopes (-got +want):\n%s", diff)
	}
	p, req := domain.ParseScope("required:control_security")
	q, opt := domain.ParseScope("read_security")
	if p != domain.PermissionControlSecurity || !req || q != domain.PermissionReadSecurity || opt {
		t.Errorf("ParseScope: %q %v, %q %v", p, req, q, opt)
	}
}

func TestUpstreamError(t *testing.T) {
	u := &domain.UpstreamError{Err: domain.ErrVehicleAsleep, Op: "send security command", Status: 409, Type: "VEHICLE_STATE",
		Code: "ASLEEP", RequestID: "5dea93a1", Transient: true}
	err := fmt.Errorf("dispatch command: %w", u)
	if !errors.Is(err, domain.ErrVehicleAsleep) || domain.KindOf(err) != domain.KindUnavailable || domain.AsUpstream(err) != u {
		t.Errorf("classification lost through wrapping: %v", err)
	}
	if got, want := u.Error(), "send security command: vehicle_asleep (upstream VEHICLE_STATE:ASLEEP) status 409 request 5dea93a1"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !u.ShouldRetry() || domain.RequiresReconnect(err) {
		t.Error("an asleep car is retryable and needs no reconnect")
	}
	timeout := &domain.UpstreamError{Err: domain.ErrUpstreamTimeout, Op: "send security command", Transient: true,
		PossiblyExecuted: true, Cause: context.DeadlineExceeded}
	if !errors.Is(timeout, context.DeadlineExceeded) || timeout.ShouldRetry() || !strings.HasSuffix(timeout.Error(), ": context deadline exceeded") {
		t.Errorf("timeout: %v, ShouldRetry %v", timeout, timeout.ShouldRetry())
	}
	var out bytes.Buffer
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "err", timeout)
	for _, field := range []string{`"may_have_executed":true`, `"code":"UPSTREAM_TIMEOUT"`, `"temporary":true`} {
		if !strings.Contains(out.String(), field) {
			t.Errorf("log line lacks %s: %s", field, out.String())
		}
	}
	for _, e := range []*domain.Error{domain.ErrReauthRequired, domain.ErrConsentRevoked} {
		if !domain.RequiresReconnect(&domain.UpstreamError{Err: e}) {
			t.Errorf("RequiresReconnect(%s) = false", e.Code)
		}
	}
	if domain.AsUpstream(errors.New("plain")) != nil {
		t.Error("AsUpstream found an UpstreamError in a plain error")
	}
}

func TestVehicleErrorCodes(t *testing.T) {
	upperSnake := regexp.MustCompile(`^[A-Z]+(_[A-Z]+)*$`)
	seen := map[string]bool{}
	for _, e := range []*domain.Error{domain.ErrVehicleAsleep, domain.ErrVehicleUnreachable, domain.ErrVehicleInMotion,
		domain.ErrVehicleNotReady, domain.ErrReauthRequired, domain.ErrConsentRevoked, domain.ErrOwnerActionRequired,
		domain.ErrNotCapable, domain.ErrUpstreamUnavailable, domain.ErrUpstreamTimeout, domain.ErrUpstreamRejected,
		domain.ErrConnectCodeInvalid, domain.ErrRateLimited, domain.ErrScopeNotGranted} {
		if !upperSnake.MatchString(e.Code) || seen[e.Code] || e.Msg == "" {
			t.Errorf("code %q: not UPPER_SNAKE, duplicated or without a message", e.Code)
		}
		seen[e.Code] = true
	}
	if domain.ErrReauthRequired.Kind == domain.KindUnauthenticated {
		t.Error("REAUTH_REQUIRED must not be a 401: the app would drop its own session")
	}
}

// Revoked is final; a status moves only to what a refusal proves; active is never marked.
func TestConnectionMark(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		from, to domain.ConnectionStatus
		changed  bool
	}{
		{domain.ConnectionActive, domain.ConnectionNeedsReauth, true},
		{domain.ConnectionActive, domain.ConnectionRevoked, true},
		{domain.ConnectionNeedsReauth, domain.ConnectionRevoked, true},
		{domain.ConnectionNeedsReauth, domain.ConnectionNeedsReauth, false},
		{domain.ConnectionRevoked, domain.ConnectionNeedsReauth, false},
		{domain.ConnectionRevoked, domain.ConnectionActive, false},
		{domain.ConnectionNeedsReauth, domain.ConnectionActive, false},
	} {
		conn := domain.Connection{Status: c.from}
		if got := conn.Mark(c.to, now); got != c.changed || (got && (conn.Status != c.to || !conn.UpdatedAt.Equal(now))) {
			t.Errorf("%s → %s: changed %v, now %s; want changed %v", c.from, c.to, got, conn.Status, c.changed)
		}
	}
	for err, want := range map[error]domain.ConnectionStatus{
		domain.ErrReauthRequired: domain.ConnectionNeedsReauth, domain.ErrConsentRevoked: domain.ConnectionRevoked,
		fmt.Errorf("refresh: %w", domain.ErrConsentRevoked): domain.ConnectionRevoked,
		domain.ErrUnavailable:                               domain.ConnectionActive, nil: domain.ConnectionActive,
	} {
		conn := domain.Connection{Status: domain.ConnectionActive}
		conn.MarkFor(err, now)
		if conn.Status != want {
			t.Errorf("MarkFor(%v) → %s, want %s", err, conn.Status, want)
		}
	}
	if domain.MoreSevere(domain.ConnectionNeedsReauth, domain.ConnectionRevoked) != domain.ConnectionRevoked ||
		domain.MoreSevere("", domain.ConnectionNeedsReauth) != domain.ConnectionNeedsReauth || domain.MoreSevere("", "") != "" {
		t.Error("MoreSevere does not rank revoked over needs_reauth over nothing")
	}
}
