package main

import "github.com/nproxy/nproxy"

// oneShot is an in connector whose single connection is the whole run: the
// stdio connector. nproxy exits when it is over, with status 1 if it failed
// before being relayed (the error is already logged).
type oneShot interface {
	Err() error
}

// maxConnections is the configured budget, or 1 when an in connector is a
// one-shot and none was configured: the run ends with that connection.
func maxConnections(s *settings, proxies []*nproxy.Proxy) int {
	if s.MaxConnections == 0 && len(oneShots(proxies)) > 0 {
		return 1
	}
	return s.MaxConnections
}

// oneShotStatus is the exit status of a run that ended normally.
func oneShotStatus(proxies []*nproxy.Proxy) int {
	for _, s := range oneShots(proxies) {
		if s.Err() != nil {
			return 1
		}
	}
	return 0
}

func oneShots(proxies []*nproxy.Proxy) []oneShot {
	var shots []oneShot
	for _, p := range proxies {
		if s, ok := p.In().(oneShot); ok {
			shots = append(shots, s)
		}
	}
	return shots
}
