package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/betterkey/backend/domain"
)

// The admission rule in one table: replay over every refusal, in flight over the rate limit,
// the exact waits (never under a second), and a takeover of a lease that ran out.
func TestDecideAdmission(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	prior := domain.Command{ID: domain.NewCommandID()}
	holder := domain.NewCommandID()
	held := &domain.CommandLease{CommandID: holder, Until: now.Add(12 * time.Second)}
	expired := &domain.CommandLease{CommandID: holder, Until: now}
	limit := domain.CommandRateLimit{Window: 10 * time.Minute, Max: 2}
	full := []time.Time{now.Add(-time.Minute), now.Add(-4 * time.Minute)}
	for name, c := range map[string]struct {
		st       domain.AdmissionState
		want     domain.Admission
		err      *domain.Error
		wait     time.Duration
		holderID domain.CommandID
	}{
		"free vehicle":               {st: domain.AdmissionState{}},
		"replay over in flight":      {st: domain.AdmissionState{Prior: &prior, Lease: held, Recent: full}, want: domain.Admission{Replay: true}},
		"in flight":                  {st: domain.AdmissionState{Lease: held}, err: domain.ErrCommandInFlight, wait: 12 * time.Second, holderID: holder},
		"in flight over rate":        {st: domain.AdmissionState{Lease: held, Recent: full}, err: domain.ErrCommandInFlight, wait: 12 * time.Second, holderID: holder},
		"lease ran out: take over":   {st: domain.AdmissionState{Lease: expired}, want: domain.Admission{TakeOver: true}},
		"rate: oldest of the latest": {st: domain.AdmissionState{Recent: full}, err: domain.ErrCommandRateLimited, wait: 6 * time.Minute},
		"rate: one under the limit":  {st: domain.AdmissionState{Recent: full[:1]}},
		"rate: any order, more than the limit": {st: domain.AdmissionState{Recent: []time.Time{now.Add(-8 * time.Minute), now.Add(-time.Minute),
			now.Add(-4 * time.Minute)}}, err: domain.ErrCommandRateLimited, wait: 6 * time.Minute},
		"rate: at least a second":      {st: domain.AdmissionState{Recent: []time.Time{now, now.Add(-limit.Window + time.Millisecond)}}, err: domain.ErrCommandRateLimited, wait: time.Second},
		"in flight: at least a second": {st: domain.AdmissionState{Lease: &domain.CommandLease{CommandID: holder, Until: now.Add(time.Millisecond)}}, err: domain.ErrCommandInFlight, wait: time.Second, holderID: holder},
	} {
		got, err := domain.DecideAdmission(c.st, limit, now)
		if c.err == nil {
			if err != nil || got != c.want {
				t.Errorf("%s: = %+v, %v; want %+v", name, got, err, c.want)
			}
			continue
		}
		r, ok := errors.AsType[*domain.CommandRefusal](err)
		if !ok || !errors.Is(err, c.err) || r.RetryAfter != c.wait || r.CommandID != c.holderID {
			t.Errorf("%s: = %+v, %v; want %v waiting %v held by %q", name, got, err, c.err.Code, c.wait, c.holderID)
		}
	}
	if got, err := domain.DecideAdmission(domain.AdmissionState{Recent: full}, domain.CommandRateLimit{}, now); err != nil || got.TakeOver {
		t.Errorf("no limit: = %+v, %v", got, err)
	}
}
