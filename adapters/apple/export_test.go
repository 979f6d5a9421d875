package apple

import "time"

// SetNow replaces the verifier's clock; tests move time instead of sleeping.
func (v *Verifier) SetNow(now func() time.Time) { v.now = now }

// SetNow replaces the development verifier's clock.
func (u *Unverified) SetNow(now func() time.Time) { u.now = now }
