package applesim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Server-to-server event types. Apple's older documentation and WWDC20 spelled account deletion
// "account-delete"; the current page says "account-deleted". Receivers must accept both.
const (
	EventEmailDisabled  = "email-disabled"
	EventEmailEnabled   = "email-enabled"
	EventConsentRevoked = "consent-revoked"
	EventAccountDelete  = "account-delete"
	EventAccountDeleted = "account-deleted"
)

// NotificationOptions describes one server-to-server notification. Zero values give what Apple
// really sends: events as a JSON-encoded string and event_time in milliseconds.
type NotificationOptions struct {
	// Audience is the primary App ID (default Options.DefaultAudience).
	Audience string
	// Type is the event type, one of the Event constants.
	Type string
	// Subject is the user (default DevSubject).
	Subject string
	// Email and IsPrivateEmail are set for email events.
	Email          string
	IsPrivateEmail any
	// EventTime defaults to the simulator's clock.
	EventTime time.Time
	// EventTimeSeconds sends event_time in seconds, as Apple's documentation example shows.
	EventTimeSeconds bool
	// EventsAsObject sends events as a JSON object, as Apple documents but does not send.
	EventsAsObject bool
	// JTI defaults to a random id; reuse one to simulate a duplicate delivery.
	JTI string
	// IssuedAt defaults to the simulator's clock; Lifetime (default 24 h) sets exp.
	IssuedAt time.Time
	Lifetime time.Duration
	// KID picks the signing key as in MintOptions.
	KID string
}

// MintNotification signs a notification JWS with Apple's identity-token keys.
func (s *Simulator) MintNotification(o NotificationOptions) (string, error) {
	if o.Audience == "" {
		o.Audience = s.opts.DefaultAudience
	}
	if o.Audience == "" || o.Type == "" {
		return "", errors.New("mint notification: audience and type are required")
	}
	if o.Subject == "" {
		o.Subject = DevSubject
	}
	now := s.now()
	if o.EventTime.IsZero() {
		o.EventTime = now
	}
	if o.IssuedAt.IsZero() {
		o.IssuedAt = now
	}
	if o.Lifetime == 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.JTI == "" {
		o.JTI = randomString("0123456789abcdefghijklmnopqrstuvwxyz", 22)
	}
	event := map[string]any{"type": o.Type, "sub": o.Subject, "event_time": o.EventTime.UnixMilli()}
	if o.EventTimeSeconds {
		event["event_time"] = o.EventTime.Unix()
	}
	if o.Email != "" {
		event["email"] = o.Email
	}
	if o.IsPrivateEmail != nil {
		event["is_private_email"] = o.IsPrivateEmail
	}
	var events any = event
	if !o.EventsAsObject {
		b, err := json.Marshal(event)
		if err != nil {
			return "", fmt.Errorf("encode events: %w", err)
		}
		events = string(b)
	}
	return s.sign(jwt.MapClaims{
		"iss":    Issuer,
		"aud":    o.Audience,
		"iat":    o.IssuedAt.Unix(),
		"exp":    o.IssuedAt.Add(o.Lifetime).Unix(),
		"jti":    o.JTI,
		"events": events,
	}, o.KID)
}

// DeliverNotification POSTs {"payload": jws} to url as Apple does, with no other authentication.
// Call it twice with the same payload to simulate Apple's occasional duplicate delivery.
func DeliverNotification(ctx context.Context, client *http.Client, url, jws string) error {
	body, err := json.Marshal(map[string]string{"payload": jws})
	if err != nil {
		return fmt.Errorf("encode notification: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build notification request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("deliver notification: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxSimBody))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("deliver notification: status %d", resp.StatusCode)
	}
	return nil
}
