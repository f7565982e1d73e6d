package main

// oneShot is an in connector whose single connection is the whole run: the
// stdio connector. nproxy exits when it is over, with status 1 if it failed
// before being relayed (the error is already logged).
type oneShot interface {
	Err() error
}

// maxConnections is the configured budget, or 1 when an in connector is a
// one-shot and none was configured: the run ends with that connection.
func (c *config) maxConnections() int {
	if c.MaxConnections == 0 && len(c.oneShots()) > 0 {
		return 1
	}
	return c.MaxConnections
}

// oneShotStatus is the exit status of a run that ended normally.
func (c *config) oneShotStatus() int {
	for _, s := range c.oneShots() {
		if s.Err() != nil {
			return 1
		}
	}
	return 0
}

func (c *config) oneShots() []oneShot {
	var shots []oneShot
	for _, in := range c.ins {
		if s, ok := in.(oneShot); ok {
			shots = append(shots, s)
		}
	}
	return shots
}
