package apple_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/adapters/apple"
	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/domain"
)

// newNotifications is a notification verifier for the phone app id, sharing e's key cache.
func newNotifications(t *testing.T, e *env) *apple.Notifications {
	t.Helper()
	n, err := apple.NewNotifications(e.v, e.cfg, phoneAud)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) notification(t *testing.T, o applesim.NotificationOptions) string {
	t.Helper()
	if o.Type == "" {
		o.Type = applesim.EventConsentRevoked
	}
	jws, err := e.sim.MintNotification(o)
	if err != nil {
		t.Fatal(err)
	}
	return jws
}

func TestVerifyNotificationAcceptsWhatAppleSends(t *testing.T) {
	e := newEnv(t, nil)
	n := newNotifications(t, e)
	happened := start.Add(-time.Minute).Truncate(time.Millisecond)
	for name, tc := range map[string]struct {
		opts applesim.NotificationOptions
		want domain.AppleEvent
	}{
		"events as a string, time in ms (as sent)": {applesim.NotificationOptions{Type: applesim.EventConsentRevoked, EventTime: happened},
			domain.AppleEvent{Type: domain.AppleConsentRevoked, Subject: applesim.DevSubject, Time: happened}},
		"events as an object, time in s (as documented)": {applesim.NotificationOptions{Type: applesim.EventConsentRevoked, EventTime: happened,
			EventsAsObject: true, EventTimeSeconds: true}, domain.AppleEvent{Type: domain.AppleConsentRevoked, Subject: applesim.DevSubject,
			Time: happened.Truncate(time.Second)}},
		"events as an object, time in ms": {applesim.NotificationOptions{Type: applesim.EventAccountDeleted, EventTime: happened, EventsAsObject: true},
			domain.AppleEvent{Type: domain.AppleAccountDeleted, Subject: applesim.DevSubject, Time: happened}},
		"events as a string, time in s": {applesim.NotificationOptions{Type: applesim.EventAccountDeleted, EventTime: happened, EventTimeSeconds: true},
			domain.AppleEvent{Type: domain.AppleAccountDeleted, Subject: applesim.DevSubject, Time: happened.Truncate(time.Second)}},
		"the older account-delete spelling": {applesim.NotificationOptions{Type: applesim.EventAccountDelete, Subject: "000999.abc.0001", EventTime: happened},
			domain.AppleEvent{Type: domain.AppleAccountDeleted, Subject: "000999.abc.0001", Time: happened}},
		"an email event": {applesim.NotificationOptions{Type: applesim.EventEmailDisabled, Email: "x@privaterelay.appleid.com", IsPrivateEmail: "true", EventTime: happened},
			domain.AppleEvent{Type: domain.AppleEmailDisabled, Subject: applesim.DevSubject, Time: happened}},
	} {
		t.Run(name, func(t *testing.T) {
			tc.opts.JTI = "jti-0001"
			got, err := n.VerifyNotification(t.Context(), e.notification(t, tc.opts))
			if err != nil {
				t.Fatalf("VerifyNotification: %v", err)
			}
			want := domain.AppleNotification{ID: tc.opts.JTI, Issuer: applesim.Issuer, Audience: phoneAud, IssuedAt: start, Event: tc.want}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("(-got +want):\n%s", diff)
			}
		})
	}
}

func TestVerifyNotificationRejects(t *testing.T) {
	e := newEnv(t, nil)
	n := newNotifications(t, e)
	good := strings.Split(e.notification(t, applesim.NotificationOptions{}), ".")
	other := strings.Split(e.notification(t, applesim.NotificationOptions{Type: applesim.EventAccountDeleted}), ".")
	sig := []byte(good[2])
	if sig[10] == 'A' {
		sig[10] = 'B'
	} else {
		sig[10] = 'A'
	}
	for name, payload := range map[string]string{
		"bad signature":              good[0] + "." + good[1] + "." + string(sig),
		"signature of another token": good[0] + "." + good[1] + "." + other[2],
		"wrong audience (the watch)": e.notification(t, applesim.NotificationOptions{Audience: watchAud}),
		"wrong audience (other app)": e.notification(t, applesim.NotificationOptions{Audience: "com.other.app"}),
		"expired":                    e.notification(t, applesim.NotificationOptions{IssuedAt: start.Add(-48 * time.Hour)}),
		"issued in the future":       e.notification(t, applesim.NotificationOptions{IssuedAt: start.Add(10 * time.Minute)}),
		"unknown key id":             e.notification(t, applesim.NotificationOptions{KID: "no-such-kid"}),
		"an identity token":          e.mint(t, applesim.MintOptions{}),
		"empty":                      "",
		"not a jws":                  "payload",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := n.VerifyNotification(t.Context(), payload)
			if !errors.Is(err, domain.ErrInvalidNotification) || domain.KindOf(err) != domain.KindUnauthenticated {
				t.Fatalf("VerifyNotification = %v, want ErrInvalidNotification", err)
			}
			if payload != "" && strings.Contains(err.Error(), payload) {
				t.Fatalf("the error quotes the payload")
			}
		})
	}
}

func TestVerifyNotificationClaimRules(t *testing.T) {
	e := newEnv(t, nil)
	n := newNotifications(t, e)
	sign := func(claims map[string]any) string {
		t.Helper()
		base := map[string]any{"iss": applesim.Issuer, "aud": phoneAud, "iat": start.Unix(), "jti": "j1",
			"events": `{"type":"consent-revoked","sub":"s1","event_time":1611765847700}`}
		for k, v := range claims {
			if v == nil {
				delete(base, k)
				continue
			}
			base[k] = v
		}
		tok, err := e.sim.Mint(applesim.MintOptions{Audience: phoneAud, ExtraClaims: map[string]any{"sub": nil, "exp": nil,
			"auth_time": nil, "nonce_supported": nil, "real_user_status": nil, "iss": base["iss"], "aud": base["aud"], "iat": base["iat"],
			"jti": base["jti"], "events": base["events"]}})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for name, tc := range map[string]struct {
		claims map[string]any
		ok     bool
	}{
		"no exp, fresh (Apple's example shape)": {map[string]any{}, true},
		"no exp, a day and more old":            {map[string]any{"iat": start.Add(-25 * time.Hour).Unix()}, false},
		"no jti":                                {map[string]any{"jti": ""}, false},
		"other issuer":                          {map[string]any{"iss": "https://account.example"}, false},
		"events missing":                        {map[string]any{"events": ""}, false},
		"events a number":                       {map[string]any{"events": 7}, false},
		"events an array":                       {map[string]any{"events": []any{map[string]any{"type": "consent-revoked", "sub": "s"}}}, false},
		"events without sub":                    {map[string]any{"events": `{"type":"consent-revoked"}`}, false},
		"events with a strange type":            {map[string]any{"events": `{"type":"Consent Revoked!","sub":"s"}`}, false},
		"event_time as text":                    {map[string]any{"events": `{"type":"consent-revoked","sub":"s","event_time":"1611765847"}`}, true},
		"event_time nonsense":                   {map[string]any{"events": `{"type":"consent-revoked","sub":"s","event_time":"yesterday"}`}, false},
		"event_time absent":                     {map[string]any{"events": map[string]any{"type": "account-deleted", "sub": "s"}}, true},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := n.VerifyNotification(t.Context(), sign(tc.claims))
			if tc.ok && err != nil {
				t.Fatalf("VerifyNotification: %v", err)
			}
			if !tc.ok && !errors.Is(err, domain.ErrInvalidNotification) {
				t.Fatalf("VerifyNotification = %v, want ErrInvalidNotification", err)
			}
		})
	}
	if _, err := apple.NewNotifications(e.v, e.cfg, ""); err == nil {
		t.Error("NewNotifications without an app id succeeded")
	}
	if _, err := apple.NewNotifications(nil, e.cfg, phoneAud); err == nil {
		t.Error("NewNotifications without a verifier succeeded")
	}
}

func TestNotificationsShareTheIdentityKeyCache(t *testing.T) {
	e := newEnv(t, nil)
	n := newNotifications(t, e)
	if _, err := e.v.Verify(t.Context(), e.mint(t, applesim.MintOptions{})); err != nil {
		t.Fatal(err)
	}
	before := e.fetches()
	for range 3 {
		if _, err := n.VerifyNotification(t.Context(), e.notification(t, applesim.NotificationOptions{})); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.fetches() - before; got != 0 {
		t.Fatalf("notifications fetched the key set %d more times; the cache is not shared", got)
	}
}
