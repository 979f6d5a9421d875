package ports

import (
	"context"
	"time"

	"github.com/betterkey/backend/domain"
)

// VehicleEvents authenticates and decodes the vehicle service's signed webhook deliveries. It is
// the one place that knows the signature scheme and the envelope shapes; the use case only ever
// decodes a body Authenticate accepted. Implementations are safe for concurrent use and never put
// a signature, a key or a body into an error.
type VehicleEvents interface {
	// Authenticate checks signature against the raw body with every active secret, in constant
	// time. Any mismatch, a missing or malformed signature included, wraps
	// domain.ErrWebhookSignature.
	Authenticate(body []byte, signature string) error
	// Decode reads an authenticated body leniently across the sender's known shape drift. Only a
	// body that is not an event object at all is an error (KindInvalid); unknown event types
	// decode as domain.VehicleEventOther.
	Decode(body []byte) (domain.VehicleEvent, error)
	// AnswerChallenge returns the proof a verify event asks for, made with the current secret.
	AnswerChallenge(challenge string) string
}

// AppleNotificationVerifier checks Apple server-to-server notifications: the same signature,
// issuer, issued-at and expiry checks as identity tokens, the primary app id as the only
// audience, no nonce. Implementations are safe for concurrent use.
type AppleNotificationVerifier interface {
	// VerifyNotification returns the notification payload proves, an error wrapping
	// domain.ErrInvalidNotification for any failed check, or an unavailable error when Apple's
	// keys cannot be had at all.
	VerifyNotification(ctx context.Context, payload string) (domain.AppleNotification, error)
}

// WebhookInbox keeps verified pushed events until they are processed, keyed by (source, id), so
// that at-least-once deliveries run once. Workers on any number of replicas claim events with a
// lease: a claimed event is not handed out again until its lease ends, and one whose worker died
// is handed out again after it. Implementations are safe for concurrent use.
type WebhookInbox interface {
	// Add stores e unless an event with the same source and id is stored already, whatever its
	// state; it reports whether e was stored.
	Add(ctx context.Context, e domain.InboxEvent) (bool, error)
	// Claim leases up to limit pending events whose AvailableAt is not after now, the earliest
	// due first: it sets their AvailableAt to now+lease, counts the attempt, and returns them so,
	// oldest received first. Of concurrent claimers (across processes) each event goes to at
	// most one.
	Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.InboxEvent, error)
	// Finish moves a pending event to a final status (processed or failed) with its outcome.
	// spent drops the payload of a processed event whose body has done its work: only its key is
	// kept, for deduplication (a failed event always keeps its body, for operators). An event
	// already final is left as it is. domain.ErrNotFound if there is no such event.
	Finish(ctx context.Context, source domain.EventSource, id string, status domain.InboxStatus, outcome string, spent bool, now time.Time) error
	// Release gives a pending event back for another attempt at at, recording why the last one
	// failed. An event already final is left as it is. domain.ErrNotFound if there is no such
	// event.
	Release(ctx context.Context, source domain.EventSource, id string, at time.Time, lastError string) error
	// Get returns one event; domain.ErrNotFound if there is none.
	Get(ctx context.Context, source domain.EventSource, id string) (domain.InboxEvent, error)
	// DeleteFinished removes up to limit final events of source received before before and
	// reports how many; pending events stay whatever their age.
	DeleteFinished(ctx context.Context, source domain.EventSource, before time.Time, limit int) (int, error)
}

// CommandSettler settles lock and unlock commands whose outcome was unknown from a lock state the
// vehicle reported later, so the owner learns that a command that timed out did work. It is a
// role of the command store. Implementations are safe for concurrent use.
type CommandSettler interface {
	// SettleUnknown applies domain.Command.Settle (locked, observedAt, now) to every unknown
	// command of the vehicle and saves those it settles, each once however many callers race;
	// it returns them as saved. Commands in any other state are left alone.
	SettleUnknown(ctx context.Context, vehicle domain.VehicleID, locked bool, observedAt, now time.Time) ([]domain.Command, error)
}
