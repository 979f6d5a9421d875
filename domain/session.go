package domain

import "time"

// Device is the kind of Apple device a session lives on; phone and watch get separate sessions.
type Device string

// The devices the app ships on.
const (
	DevicePhone Device = "phone"
	DeviceWatch Device = "watch"
)

// ParseDevice validates a device kind from a request.
func ParseDevice(s string) (Device, error) {
	switch Device(s) {
	case DevicePhone, DeviceWatch:
		return Device(s), nil
	}
	return "", Invalid("device", "must be phone or watch")
}

// SessionLifetimes bounds how long a session may live: idle since the last refresh, and absolute
// since sign-in, whatever the activity.
type SessionLifetimes struct {
	Access   time.Duration
	Idle     time.Duration
	Absolute time.Duration
}

// DefaultSessionLifetimes are the SPEC defaults: 15 min access tokens, 30 d idle, 90 d absolute.
func DefaultSessionLifetimes() SessionLifetimes {
	return SessionLifetimes{Access: 15 * time.Minute, Idle: 30 * 24 * time.Hour, Absolute: 90 * 24 * time.Hour}
}

// Session is one signed-in install. Its refresh token is known only by hash; each refresh rotates
// it, and stores remember rotated hashes so that a replayed one can be recognised.
type Session struct {
	ID                SessionID
	UserID            UserID
	InstallID         string
	Device            Device
	DeviceName        string
	RefreshHash       TokenHash
	CreatedAt         time.Time
	LastUsedAt        time.Time
	IdleExpiresAt     time.Time
	AbsoluteExpiresAt time.Time
	RevokedAt         *time.Time
	RevokeReason      string
}

// Revoke reasons recorded with a session; they stay in the audit trail, never in responses.
const (
	RevokeSignOut      = "sign_out"
	RevokeUser         = "revoked_by_user"
	RevokeAdmin        = "revoked_by_admin"
	RevokeRefreshReuse = "refresh_token_reuse"
	RevokeNewSignIn    = "replaced_by_new_sign_in"
	RevokeAppleConsent = "apple_consent_revoked"
	RevokeAccount      = "account_deleted"
	// RevokeEmergency: an operator revoked every session of every account at once.
	RevokeEmergency = "revoked_in_emergency"
)

// MaxLiveSessions bounds the sessions one account keeps usable at once. It is far above what a
// person's phones and watches need, and it keeps what a sign-in reads bounded: without it, a
// client that signs in with a new install id each time would pile up live sessions for 90 days.
const MaxLiveSessions = 50

// RevokeSessionLimit: a sign-in beyond MaxLiveSessions ended the account's oldest session.
const RevokeSessionLimit = "session_limit"

// SessionsEndedBySignIn decides which of the account's live sessions (newest first, as
// SessionStore.ListLive returns them) a new sign-in of install on
// device ends, and why: a session is per install and device, so the earlier one of the same pair
// is replaced; and when the account is at the limit, the oldest live sessions make room.
func SessionsEndedBySignIn(live []Session, install string, device Device) map[SessionID]string {
	ended := map[SessionID]string{}
	kept := 0
	for _, x := range live {
		if x.InstallID == install && x.Device == device {
			ended[x.ID] = RevokeNewSignIn
			continue
		}
		kept++
		if kept >= MaxLiveSessions { // the new session is the one more
			ended[x.ID] = RevokeSessionLimit
		}
	}
	return ended
}

// NewSession starts a session whose current refresh token hashes to refresh.
func NewSession(user UserID, installID string, device Device, deviceName string, refresh TokenHash, now time.Time, l SessionLifetimes) Session {
	return Session{
		ID: NewSessionID(), UserID: user, InstallID: installID, Device: device, DeviceName: deviceName,
		RefreshHash: refresh, CreatedAt: now, LastUsedAt: now,
		IdleExpiresAt: minTime(now.Add(l.Idle), now.Add(l.Absolute)), AbsoluteExpiresAt: now.Add(l.Absolute),
	}
}

// Usable returns nil when the session may still authenticate requests at now, otherwise the error
// that tells the app to sign in again.
func (s *Session) Usable(now time.Time) error {
	if s.RevokedAt != nil {
		return ErrSessionRevoked
	}
	if !now.Before(s.IdleExpiresAt) || !now.Before(s.AbsoluteExpiresAt) {
		return ErrSessionExpired
	}
	return nil
}

// Revoke ends the session; revoking twice keeps the first reason and time.
func (s *Session) Revoke(now time.Time, reason string) {
	if s.RevokedAt != nil {
		return
	}
	s.RevokedAt = &now
	s.RevokeReason = reason
}

// Rotate replaces the refresh token and slides the idle expiry, never past the absolute one.
func (s *Session) Rotate(next TokenHash, now time.Time, l SessionLifetimes) {
	s.RefreshHash = next
	s.LastUsedAt = now
	s.IdleExpiresAt = minTime(now.Add(l.Idle), s.AbsoluteExpiresAt)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
