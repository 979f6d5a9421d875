package apple

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/betterkey/backend/adapters/internal/epoch"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// MaxNotificationAge bounds how old a notification without an exp claim may be. Apple's example
// payload has no exp (real ones carry exp = iat + 24 h), and jti deduplication only lasts as long
// as the inbox keeps an event, so an undated capture must not be replayable forever.
const MaxNotificationAge = 24 * time.Hour

// maxSubject bounds the event's subject; Apple's are 44 characters.
const maxSubject = 255

// Notifications implements ports.AppleNotificationVerifier: Apple's server-to-server
// notifications, signed with the identity-token keys. It shares the identity verifier's key
// cache and parser, so both are served by one JWKS fetch schedule, and applies its own claim
// policy: the primary app id as the one audience, exp checked when present, no nonce, no
// top-level sub, a jti required. It is safe for concurrent use.
type Notifications struct {
	v      *Verifier
	policy *policy
	leeway time.Duration
}

var _ ports.AppleNotificationVerifier = (*Notifications)(nil)

// NewNotifications builds the notification verifier on v's keys. cfg supplies the issuers and
// the leeway (its audiences are the identity tokens' and are not used here); audience is the
// primary app id Apple addresses notifications to.
func NewNotifications(v *Verifier, cfg Config, audience string) (*Notifications, error) {
	if v == nil {
		return nil, errors.New("create apple notification verifier: no identity verifier to share keys with")
	}
	if audience == "" {
		return nil, errors.New("create apple notification verifier: the primary app id is required")
	}
	cfg.Audiences = []string{audience}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("create apple notification verifier: %w", err)
	}
	cfg = cfg.WithDefaults()
	clock := func() time.Time { return v.now() }
	return &Notifications{
		v:      v,
		policy: newPolicy(cfg.Issuers, cfg.Audiences, cfg.Leeway, clock, false, false, domain.ErrInvalidNotification),
		leeway: cfg.Leeway,
	}, nil
}

// VerifyNotification implements ports.AppleNotificationVerifier. Every rejection wraps
// domain.ErrInvalidNotification with a constant reason; no part of the payload reaches an error.
func (n *Notifications) VerifyNotification(ctx context.Context, payload string) (domain.AppleNotification, error) {
	var c notificationClaims
	aud, err := n.v.verifySigned(ctx, payload, n.policy, &c)
	if err != nil {
		return domain.AppleNotification{}, err
	}
	if c.ID == "" || len(c.ID) > domain.MaxEventIDLen {
		return domain.AppleNotification{}, n.policy.reject("jti missing or too long")
	}
	iat := c.IssuedAt.UTC() // policy.check proved it present
	if c.ExpiresAt == nil && n.v.now().Sub(iat) > MaxNotificationAge+n.leeway {
		return domain.AppleNotification{}, n.policy.reject("notification without expiry is too old")
	}
	ev, err := decodeNotificationEvent(c.Events)
	if err != nil {
		return domain.AppleNotification{}, n.policy.reject("events claim is malformed")
	}
	return domain.AppleNotification{ID: c.ID, Issuer: c.Issuer, Audience: aud, IssuedAt: iat, Event: ev}, nil
}

// notificationClaims is a notification's payload: registered claims (jti is RegisteredClaims.ID)
// and events, which Apple documents as an object and sends as a JSON-encoded string.
type notificationClaims struct {
	jwt.RegisteredClaims
	Events json.RawMessage `json:"events"`
}

// notificationEvent is the events object. event_time is kept raw: Apple sends milliseconds while
// its documentation shows seconds.
type notificationEvent struct {
	Type      string          `json:"type"`
	Subject   string          `json:"sub"`
	EventTime json.RawMessage `json:"event_time"`
}

// errMalformedEvents is decodeNotificationEvent's one error; the verifier turns it into a
// rejection.
var errMalformedEvents = errors.New("events claim is malformed")

// decodeNotificationEvent reads the events claim as an object or as a string holding one. The
// type must look like Apple's (lowercase letters and hyphens); "account-delete", the older
// spelling, becomes domain.AppleAccountDeleted. A subject is required.
func decodeNotificationEvent(raw json.RawMessage) (domain.AppleEvent, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var inner string
		if json.Unmarshal(raw, &inner) != nil {
			return domain.AppleEvent{}, errMalformedEvents
		}
		raw = bytes.TrimSpace([]byte(inner))
	}
	if len(raw) == 0 || raw[0] != '{' {
		return domain.AppleEvent{}, errMalformedEvents
	}
	var e notificationEvent
	if json.Unmarshal(raw, &e) != nil || !eventType(e.Type) || e.Subject == "" || len(e.Subject) > maxSubject {
		return domain.AppleEvent{}, errMalformedEvents
	}
	at, ok := notificationTime(e.EventTime)
	if !ok {
		return domain.AppleEvent{}, errMalformedEvents
	}
	t := domain.AppleEventType(e.Type)
	if e.Type == "account-delete" {
		t = domain.AppleAccountDeleted
	}
	return domain.AppleEvent{Type: t, Subject: e.Subject, Time: at}, nil
}

// eventType reports whether s has the shape of Apple's event types.
func eventType(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

// notificationTime reads event_time: absent or null is the zero time; a number (or a string of
// one) at or above 1e11 is milliseconds, below it seconds, since no millisecond time after 1973
// is that small. Values outside 1971–3000 are refused.
func notificationTime(raw json.RawMessage) (time.Time, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return time.Time{}, true
	}
	var s string
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return time.Time{}, false
		}
	} else {
		s = string(raw)
	}
	return epoch.Parse(s)
}
