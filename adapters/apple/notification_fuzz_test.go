package apple

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/betterkey/backend/domain"
)

// FuzzNotificationClaims feeds the notification claims decoding (registered claims, then the
// events claim as a string or an object, event_time in seconds or milliseconds) the reference
// payloads and their mutations. It runs after the signature check in production, but Apple's
// quirks make it the most shape-tolerant code on the path: it must never panic, and what it
// accepts must be a usable event.
func FuzzNotificationClaims(f *testing.F) {
	for _, seed := range []string{
		// As Apple sends it (reference §4, forum 655485): events a JSON string, event_time in ms.
		`{"iss":"https://appleid.apple.com","aud":"com.mytest.app","iat":1611765849,"exp":1611852249,"jti":"kT5wcOzfDjIPrbbxOAO3gw",` +
			`"events":"{\"type\":\"consent-revoked\",\"sub\":\"001234.abcdef0123456789abcdef0123456789.0042\",\"event_time\":1611765847700}"}`,
		// As Apple documents it: events an object, event_time in seconds.
		`{"iss":"https://appleid.apple.com","aud":"com.mytest.app","iat":1508184845,"jti":"abede...",` +
			`"events":{"type":"email-disabled","sub":"820417.faa325acbc78e1be1668ba852d492d8a.0219","email":"ep9ks2tnph@privaterelay.appleid.com","is_private_email":"true","event_time":1508184845}}`,
		`{"iss":"https://appleid.apple.com","aud":"com.mytest.app","iat":1608693365,"jti":"x","events":"{\"type\":\"account-delete\",\"sub\":\"s\",\"event_time\":1608693364100}"}`,
		`{"iss":"https://appleid.apple.com","aud":["com.mytest.app"],"iat":1608693365,"jti":"x","events":{"type":"account-deleted","sub":"s"}}`,
		`{"events":7}`, `{"events":"\"{\\\"type\\\":\\\"x\\\"}\""}`, `{}`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var c notificationClaims
		if json.Unmarshal(payload, &c) != nil {
			return // golang-jwt refuses the token before the claims are looked at
		}
		ev, err := decodeNotificationEvent(c.Events)
		if err != nil {
			if ev != (domain.AppleEvent{}) {
				t.Fatalf("a rejected events claim returned %+v", ev)
			}
			return
		}
		if ev.Subject == "" || len(ev.Subject) > maxSubject || !eventType(string(ev.Type)) || ev.Type == "account-delete" {
			t.Fatalf("accepted an unusable event %+v", ev)
		}
		if !ev.Time.IsZero() && (ev.Time.Year() < 1970 || ev.Time.Year() > 3000 || ev.Time.Location() != time.UTC) {
			t.Fatalf("accepted event time %v", ev.Time)
		}
	})
}
