// Package epoch reads the numeric timestamps vendors send (Smartcar's signal times, Apple's
// event_time), which come in seconds or in milliseconds without saying which.
package epoch

import (
	"strconv"
	"time"
)

// Parse reads s as epoch milliseconds or seconds, telling them apart by size, and accepts only
// instants between 1971 and 3000, so that neither unit read as the other passes (nor NaN, which
// "NaN" parses to and every comparison lets through).
func Parse(s string) (time.Time, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 3e7 && f <= 3.3e13) { // written so that NaN fails too
		return time.Time{}, false
	}
	if f >= 1e11 {
		return time.UnixMilli(int64(f)).UTC(), true
	}
	return time.Unix(int64(f), 0).UTC(), true
}
