package connectors

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/nproxy/nproxy/loop"
)

// DefaultHost is where in connectors listen when no host is given, as in
// Net::Proxy.
const DefaultHost = "localhost"

// Listen opens a listener on l for every address of host (DefaultHost if
// empty; "*" means every address, IPv4 and IPv6; an IPv6 address may be in
// brackets) on port. Net::Proxy's
// message names the host as given: "can't listen on localhost port 6789".
// On error nothing is left open.
func Listen(l *loop.Loop, host string, port int, accept loop.AcceptFunc) error {
	_, err := ListenSockets(l, host, port, accept)
	return err
}

// ListenSockets is Listen, and returns the listening sockets, for a
// connector that sets options on them.
func ListenSockets(l *loop.Loop, host string, port int, accept loop.AcceptFunc) ([]*loop.Socket, error) {
	addrs, err := listenAddrs(host, port)
	if err != nil {
		return nil, fmt.Errorf("can't listen on %s port %d: %w", host, port, err)
	}
	var opened []*loop.Socket
	for _, a := range addrs {
		s, err := l.Listen(a, accept)
		if err != nil {
			for _, o := range opened {
				l.Close(o)
			}
			return nil, fmt.Errorf("can't listen on %s port %d: %w", displayHost(host), port, err)
		}
		opened = append(opened, s)
	}
	return opened, nil
}

func displayHost(host string) string {
	if host == "" {
		return DefaultHost
	}
	return host
}

// listenAddrs resolves host for listening. It runs before the loop starts,
// so a blocking lookup stalls nothing.
func listenAddrs(host string, port int) ([]netip.AddrPort, error) {
	host, err := ParseHost("host", displayHost(host))
	if err != nil {
		return nil, err
	}
	if host == "*" {
		return []netip.AddrPort{netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(port))}, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(a.Unmap(), uint16(port))}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	var out []netip.AddrPort
	seen := map[netip.Addr]bool{}
	for _, ip := range ips {
		ip = ip.Unmap()
		if !seen[ip] && usable(ip) {
			seen[ip] = true
			out = append(out, netip.AddrPortFrom(ip, uint16(port)))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no usable address for %s", host)
	}
	return out, nil
}

// usable leaves out IPv6 addresses on a machine without IPv6, where binding
// them would fail although the name is fine.
func usable(ip netip.Addr) bool {
	if ip.Is4() {
		return true
	}
	ln, err := net.Listen("tcp6", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// ListenAddrs returns the addresses Listen would listen on for host and
// port, for in connectors that open another kind of socket (udp).
func ListenAddrs(host string, port int) ([]netip.AddrPort, error) {
	addrs, err := listenAddrs(host, port)
	if err != nil {
		return nil, fmt.Errorf("can't listen on %s port %d: %w", displayHost(host), port, err)
	}
	return addrs, nil
}
