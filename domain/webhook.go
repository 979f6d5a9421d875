package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// EventSource names the sender of a pushed event. Together with the sender's event id it is the
// deduplication key, so two senders can never collide on an id.
type EventSource string

// The senders BetterKey accepts pushed events from (SPEC §3 and §6), and the owner's own
// account deletion (DELETE /v1/me), which the inbox keeps so that its worker finishes an erasure
// an upstream failure interrupted.
const (
	SourceSmartcar EventSource = "smartcar"
	SourceApple    EventSource = "apple"
	SourceAccount  EventSource = "account"
)

// InboxStatus is where a stored event stands. Only pending events are ever processed; the other
// states are final, so a replayed or retried delivery can never run an event twice.
type InboxStatus string

// The inbox states.
const (
	// InboxPending events wait for (or are leased to) a worker.
	InboxPending InboxStatus = "pending"
	// InboxProcessed events ran to an outcome (which may be "dropped, unknown vehicle").
	InboxProcessed InboxStatus = "processed"
	// InboxPoison events carried a valid signature but could not be read; they are kept for
	// inspection and never processed.
	InboxPoison InboxStatus = "poison"
	// InboxFailed events kept failing until the attempt limit; operators look at them.
	InboxFailed InboxStatus = "failed"
)

// MaxEventIDLen bounds a sender's event id; a longer one is replaced by a content id rather than
// trusted with an unbounded key.
const MaxEventIDLen = 200

// InboxEvent is one verified delivery as the inbox keeps it: stored before the sender gets its
// 2xx, processed later by whichever replica claims it. Payload is the verified body (Smartcar) or
// the decoded event (Apple); it never holds a signature, a token or a key.
type InboxEvent struct {
	Source EventSource
	// ID is the sender's event id (Smartcar eventId, Apple jti) or a ContentEventID.
	ID      string
	Type    string
	Payload []byte
	Status  InboxStatus
	// Attempts counts the times a worker took the event, the first included.
	Attempts int
	// Outcome is what processing concluded, for operators and metrics.
	Outcome string
	// LastError is the classified reason of the last failed attempt; never a secret.
	LastError  string
	ReceivedAt time.Time
	// AvailableAt is when a worker may take the event next: the end of the current lease or
	// of the backoff after a failure.
	AvailableAt time.Time
	// FinishedAt is when the event reached a final state; zero while pending.
	FinishedAt time.Time
}

// ContentEventID is the deduplication id of a delivery that names none (or an unusable one): the
// SHA-256 of its verified bytes, so identical redeliveries still collapse into one event.
func ContentEventID(body []byte) string {
	h := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(h[:])
}

// VehicleEventType is what a vehicle-service webhook event is about.
type VehicleEventType string

// The vehicle event types BetterKey tells apart; everything else is VehicleEventOther and is
// stored and acknowledged but changes nothing.
const (
	VehicleEventVerify VehicleEventType = "verify"
	VehicleEventState  VehicleEventType = "state"
	VehicleEventError  VehicleEventType = "error"
	VehicleEventOther  VehicleEventType = "other"
)

// VehicleEvent is a verified vehicle-service webhook event in domain terms. Vehicle and user ids
// are the vehicle service's own; the use case maps them to BetterKey's vehicles.
type VehicleEvent struct {
	// ID is the sender's event id, empty when the delivery named none.
	ID   string
	Type VehicleEventType
	// Name is the sender's own event type, kept for logs and the inbox.
	Name string
	// VehicleID and UserID are the vehicle service's ids; either may be empty.
	VehicleID string
	UserID    string
	// Challenge is the value a verify event asks us to sign.
	Challenge string
	// Lock is the lock state the event reports, nil when it reports none.
	Lock *LockObservation
	// Problems are the errors an error event reports.
	Problems []VehicleProblem
}

// LockObservation is a lock state as the vehicle reported it. ObservedAt orders observations: a
// later one wins over an earlier one whatever order they arrive in.
type LockObservation struct {
	Locked     bool
	ObservedAt time.Time
	// FetchedAt is when the vehicle service read it from the car maker, zero if not said.
	FetchedAt time.Time
}

// VehicleProblem is one error a vehicle-service event reports about a vehicle's connection.
type VehicleProblem struct {
	Type, Code string
	// Resolved is true for the event that says the condition cleared.
	Resolved bool
	// Connection is the status the problem puts the connection in (needs_reauth or revoked),
	// empty when it says nothing about the connection's credentials.
	Connection ConnectionStatus
}

// AppleEventType is the type of an Apple server-to-server notification event.
type AppleEventType string

// The Apple event types (reference §4). Apple's older pages spell account deletion
// "account-delete"; adapters normalise it to AppleAccountDeleted.
const (
	AppleConsentRevoked AppleEventType = "consent-revoked"
	AppleAccountDeleted AppleEventType = "account-deleted"
	AppleEmailDisabled  AppleEventType = "email-disabled"
	AppleEmailEnabled   AppleEventType = "email-enabled"
)

// AppleNotification is a verified Apple server-to-server notification.
type AppleNotification struct {
	// ID is the jti, the deduplication key.
	ID       string
	Issuer   string
	Audience string
	IssuedAt time.Time
	Event    AppleEvent
}

// AppleEvent is the one event a notification carries. Subject is the Apple user, scoped to the
// notification's issuer as in identity tokens.
type AppleEvent struct {
	Type    AppleEventType
	Subject string
	// Time is when the event happened, zero when Apple did not say.
	Time time.Time
}

// Webhook rejections. Both are 401: the sender could not prove who it is, and nothing was stored.
var (
	ErrWebhookSignature    = &Error{Kind: KindUnauthenticated, Code: "INVALID_SIGNATURE", Msg: "webhook signature is missing or invalid"}
	ErrInvalidNotification = &Error{Kind: KindUnauthenticated, Code: "INVALID_NOTIFICATION", Msg: "notification is invalid"}
)

// Validate refuses an event the stores cannot keep faithfully (unknown source or status, an
// empty or over-long id, no payload), as a KindInvalid error rather than a database error.
func (e InboxEvent) Validate() error {
	switch {
	case e.Source != SourceSmartcar && e.Source != SourceApple && e.Source != SourceAccount:
		return Invalid("event.source", "must be smartcar, apple or account")
	case e.ID == "" || len(e.ID) > MaxEventIDLen:
		return Invalid("event.id", "must be 1 to 200 bytes")
	case e.Payload == nil:
		return Invalid("event.payload", "must be set")
	}
	switch e.Status {
	case InboxPending, InboxProcessed, InboxPoison, InboxFailed:
		return nil
	}
	return Invalid("event.status", "is unknown")
}
