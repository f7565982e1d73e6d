package connectors

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseHost checks the value of the host parameter key: a name, an IPv4
// address, an IPv6 address with or without the brackets URLs put around it,
// "*" (every address) or empty (the connector's default). It returns the host
// without brackets, the form loop.Dial and Listen take.
func ParseHost(key, host string) (string, error) {
	h := host
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		if err != nil || !a.Is6() {
			return "", fmt.Errorf("%s %q: only an IPv6 address goes in brackets", key, Clip(host))
		}
		return a.String(), nil
	}
	if h == "" || h == "*" || isHostName(h) {
		return h, nil
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return h, nil
	}
	return "", fmt.Errorf("%s %q is not a host name or an IP address", key, Clip(host))
}

// isHostName accepts what resolvers take: dot-separated labels of letters,
// digits, '-' and '_' (used by SRV-style and some internal names), at most
// 253 bytes in all (RFC 1035).
func isHostName(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
