package connect

import (
	"net"
	"net/url"
	"strconv"

	"golang.org/x/net/http/httpproxy"
)

// Exempt says whether NO_PROXY (or no_proxy when NO_PROXY is unset or
// empty) exempts host:port from the environment's web proxy, with Go's
// rules (golang.org/x/net/http/httpproxy): "*" exempts everything, a name
// exempts itself and its subdomains (".example.com" only the subdomains),
// an IP address or a CIDR block the addresses it covers, an entry with a
// port only that port. One difference: httpproxy never proxies localhost
// and loopback addresses, whatever NO_PROXY says, but for this connector
// "localhost" is the web proxy's own, reached only through it, so those
// targets always go through the proxy.
func Exempt(getenv func(string) string, host string, port int) bool {
	noProxy := getenv("NO_PROXY")
	if noProxy == "" {
		noProxy = getenv("no_proxy")
	}
	if noProxy == "" {
		return false
	}
	target := &url.URL{Scheme: "http", Host: net.JoinHostPort(host, strconv.Itoa(port))}
	direct := func(noProxy string) bool {
		cfg := httpproxy.Config{HTTPProxy: "http://proxy.invalid", NoProxy: noProxy}
		p, err := cfg.ProxyFunc()(target)
		return err == nil && p == nil
	}
	return !direct("") && direct(noProxy)
}
