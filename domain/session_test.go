package domain_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/domain"
)

func liveSessions(n int, at time.Time) []domain.Session {
	out := make([]domain.Session, n)
	for i := range out { // newest first, as ListLive returns them
		out[i] = domain.NewSession(domain.NewUserID(), fmt.Sprintf("install-%d", i), domain.DevicePhone,
			"", domain.TokenHash{byte(i), byte(i >> 8)}, at.Add(-time.Duration(i)*time.Minute), domain.DefaultSessionLifetimes())
	}
	return out
}

// A sign-in replaces the session of its own install and device, and nothing else while the
// account is under the limit.
func TestSessionsEndedBySignInReplacesTheSameInstallAndDevice(t *testing.T) {
	live := liveSessions(3, time.Now())
	live[1].InstallID = "mine"
	live[2].InstallID, live[2].Device = "mine", domain.DeviceWatch // the watch of the same install stays
	got := domain.SessionsEndedBySignIn(live, "mine", domain.DevicePhone)
	if diff := cmp.Diff(got, map[domain.SessionID]string{live[1].ID: domain.RevokeNewSignIn}); diff != "" {
		t.Errorf("ended (-got +want):\n%s", diff)
	}
	if got := domain.SessionsEndedBySignIn(nil, "mine", domain.DevicePhone); len(got) != 0 {
		t.Errorf("ended of no sessions = %v", got)
	}
}

// At the limit, the oldest live sessions make room for the new one, so an account never holds
// more than MaxLiveSessions usable sessions; a replaced session frees its own place.
func TestSessionsEndedBySignInKeepsTheAccountUnderTheLimit(t *testing.T) {
	live := liveSessions(domain.MaxLiveSessions, time.Now())
	got := domain.SessionsEndedBySignIn(live, "new", domain.DevicePhone)
	oldest := live[len(live)-1].ID
	if diff := cmp.Diff(got, map[domain.SessionID]string{oldest: domain.RevokeSessionLimit}); diff != "" {
		t.Errorf("ended at the limit (-got +want):\n%s", diff)
	}
	live[5].InstallID = "again"
	if got := domain.SessionsEndedBySignIn(live, "again", domain.DevicePhone); len(got) != 1 || got[live[5].ID] != domain.RevokeNewSignIn {
		t.Errorf("ended when replacing at the limit = %v; want only the replaced session", got)
	}
	if got := domain.SessionsEndedBySignIn(live[:domain.MaxLiveSessions-1], "new", domain.DevicePhone); len(got) != 0 {
		t.Errorf("ended one under the limit = %v; want none", got)
	}
}
