package connectors

import (
	"fmt"

	"github.com/nproxy/nproxy/loop"
)

// Target is where an out connector configured with host and port goes for
// client: there if host is set, else to the destination the client asked its
// in connector for (a SOCKS5 or CONNECT request, loop.Socket.Destination).
func Target(client *loop.Socket, host string, port int) (string, int, error) {
	if host != "" {
		return host, port, nil
	}
	if h, p, ok := client.Destination(); ok {
		return h, p, nil
	}
	return "", 0, fmt.Errorf("no server for %s: the out connector has no host and the client asked for no destination", client.Nick())
}

// CheckTarget checks an out connector's host and port parameters: both,
// or neither for the client's requested destination.
func CheckTarget(host string, port int) error {
	switch {
	case host == "" && port != 0:
		return fmt.Errorf("host parameter is required with port (leave both out for the client's requested destination)")
	case host != "" && port == 0:
		return fmt.Errorf("port parameter is required with host (leave both out for the client's requested destination)")
	}
	return nil
}
