package smartcar

import "time"

// SetNow replaces the client's clock, so tests share one fake clock with the simulator.
func SetNow(c *Client, now func() time.Time) { c.now = now }
