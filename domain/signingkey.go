package domain

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"time"
)

// PurposeSessionSigningKey is the binding purpose of a stored access-token signing key.
const PurposeSessionSigningKey = "session.signing_key"

// ServiceUserID owns the secrets that belong to the service rather than to a user (the session
// signing keys). It is the nil UUID, which no generated user id ever is, so a service secret can
// never be opened as a user's or a user's as the service's.
const ServiceUserID UserID = "00000000-0000-0000-0000-000000000000"

// SigningKey is one stored access-token signing key: its material, sealed at rest, and the
// window in which it signs and verifies. Replicas read the stored keys and all of them agree, by
// the clock, on which key signs and which keys verify.
type SigningKey struct {
	// ID is the key id (the tokens' kid): random, never derived from the material.
	ID string
	// Sealed is the 256-bit key, sealed under SigningKeyBinding(ID).
	Sealed SealedSecret
	// SignsFrom is when the key starts signing. A rotation sets it a propagation delay ahead, so
	// that every replica verifies the key before any replica signs with it.
	SignsFrom time.Time
	// VerifiesUntil is when its tokens stop verifying; zero while no later key replaces it.
	VerifiesUntil time.Time
	CreatedAt     time.Time
}

// SigningKeyBinding is the binding a signing key's material is sealed under.
func SigningKeyBinding(id string) SecretBinding {
	return SecretBinding{Purpose: PurposeSessionSigningKey, UserID: ServiceUserID, ConnectionID: id}
}

// NewSigningKeyID returns a fresh random key id.
func NewSigningKeyID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// VerifiesAt reports whether tokens signed with k verify at t.
func (k SigningKey) VerifiesAt(t time.Time) bool {
	return k.VerifiesUntil.IsZero() || t.Before(k.VerifiesUntil)
}

// SigningKeyState is where a key is in its life, for operators.
type SigningKeyState string

// The states of a signing key, in the order a key goes through them.
const (
	// SigningKeyPending: published to every replica, not signing yet.
	SigningKeyPending SigningKeyState = "pending"
	// SigningKeySigning: the key that signs new tokens.
	SigningKeySigning SigningKeyState = "signing"
	// SigningKeyVerifying: replaced, its tokens still verify until VerifiesUntil.
	SigningKeyVerifying SigningKeyState = "verifying"
	// SigningKeyRetired: its tokens no longer verify.
	SigningKeyRetired SigningKeyState = "retired"
)

// SigningKeyStates reports the state of each key at t. The signing key is the one that started
// signing last among those that still verify; a key that started signing earlier and still
// verifies is in its overlap window.
func SigningKeyStates(keys []SigningKey, t time.Time) []SigningKeyState {
	out := make([]SigningKeyState, len(keys))
	signer := CurrentSigningKey(keys, t)
	for i, k := range keys {
		switch {
		case !k.VerifiesAt(t):
			out[i] = SigningKeyRetired
		case i == signer:
			out[i] = SigningKeySigning
		case k.SignsFrom.After(t):
			out[i] = SigningKeyPending
		default:
			out[i] = SigningKeyVerifying
		}
	}
	return out
}

// CurrentSigningKey returns the index of the key that signs at t, -1 if none does: the verifying
// key with the latest SignsFrom not after t.
func CurrentSigningKey(keys []SigningKey, t time.Time) int {
	best := -1
	for i, k := range keys {
		if !k.VerifiesAt(t) || k.SignsFrom.After(t) {
			continue
		}
		if best < 0 || k.SignsFrom.After(keys[best].SignsFrom) {
			best = i
		}
	}
	return best
}

// SigningKeyRotation is the decision a rotation makes, for the store to persist.
type SigningKeyRotation struct {
	// SignsFrom is when the new key starts signing.
	SignsFrom time.Time
	// OthersVerifyUntil caps every other key's window: the keys it replaces verify the tokens they
	// signed until then, and never after.
	OthersVerifyUntil time.Time
}

// Bounds of a rotation's overlap window. Tokens live at most one access-token lifetime, so a
// longer overlap protects nobody; zero is the emergency rotation of a leaked key, after which
// every app refreshes its access token once.
const MaxSigningKeyOverlap = time.Hour

// PlanSigningKeyRotation decides a rotation at now: the new key signs once every replica has had
// time to load it (propagation), and the keys it replaces verify for overlap after that.
func PlanSigningKeyRotation(now time.Time, propagation, overlap time.Duration) (SigningKeyRotation, error) {
	if overlap < 0 || overlap > MaxSigningKeyOverlap {
		return SigningKeyRotation{}, Invalid("overlap", "must be between 0 and 1h")
	}
	from := now.Add(propagation)
	return SigningKeyRotation{SignsFrom: from, OthersVerifyUntil: from.Add(overlap)}, nil
}

// CapVerification applies a rotation's cap to k: its window ends at until unless it ends earlier.
func (k SigningKey) CapVerification(until time.Time) SigningKey {
	if k.VerifiesUntil.IsZero() || until.Before(k.VerifiesUntil) {
		k.VerifiesUntil = until
	}
	return k
}

// SigningKeyKeep is how long a retired key stays listed, so operators see what a rotation ended
// before it is deleted.
const SigningKeyKeep = 7 * 24 * time.Hour

// Rotate returns keys after the rotation r adds next: every existing key capped to
// r.OthersVerifyUntil, keys retired for longer than SigningKeyKeep dropped, next appended with
// r.SignsFrom.
func (r SigningKeyRotation) Rotate(keys []SigningKey, next SigningKey, now time.Time) []SigningKey {
	out := make([]SigningKey, 0, len(keys)+1)
	for _, k := range keys {
		if !k.VerifiesUntil.IsZero() && now.Sub(k.VerifiesUntil) > SigningKeyKeep {
			continue
		}
		out = append(out, k.CapVerification(r.OthersVerifyUntil))
	}
	next.SignsFrom, next.VerifiesUntil = r.SignsFrom, time.Time{}
	return append(out, next)
}

// NewSigningKeyMaterial returns 256 fresh random bits, base64, the form the access-token signer
// takes.
func NewSigningKeyMaterial() Secret {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return NewSecret(base64.StdEncoding.EncodeToString(b[:]))
}
