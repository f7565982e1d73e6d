package connect

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// DefaultProxyPort is the web proxy port used when none is given, as in
// Net::Proxy and its connect-tunnel script.
const DefaultProxyPort = 8080

// WebProxy says where a web proxy listens and which credentials it wants.
type WebProxy struct {
	Host       string
	Port       int
	User, Pass string
}

// Addr returns host:port for dialing, with an IPv6 host in brackets.
func (w WebProxy) Addr() string {
	return net.JoinHostPort(w.Host, strconv.Itoa(w.Port))
}

// ParseProxyURL reads a proxy setting as found in HTTP_PROXY:
// `http://[user:pass@]host[:port][/]`. The scheme may be left out (as many
// people set it); the port defaults to DefaultProxyPort; user and password
// are percent-decoded. Any other scheme, a path, a query or a fragment is
// refused, since this connector cannot honour them.
func ParseProxyURL(s string) (WebProxy, error) {
	raw := s
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return WebProxy{}, fmt.Errorf("proxy %q: %v", raw, errors.Unwrap(err))
	}
	if u.Scheme != "http" {
		return WebProxy{}, fmt.Errorf("proxy %q: scheme %q unsupported (want http://)", raw, u.Scheme)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return WebProxy{}, fmt.Errorf("proxy %q: unexpected path, query or fragment", raw)
	}
	w := WebProxy{Host: u.Hostname(), Port: DefaultProxyPort}
	if w.Host == "" {
		return WebProxy{}, fmt.Errorf("proxy %q: no host", raw)
	}
	if p := u.Port(); p != "" {
		if w.Port, err = strconv.Atoi(p); err != nil || w.Port < 1 || w.Port > 65535 {
			return WebProxy{}, fmt.Errorf("proxy %q: port out of range 1-65535", raw)
		}
	}
	if u.User != nil {
		w.User = u.User.Username()
		w.Pass, _ = u.User.Password()
	}
	return w, nil
}

// ProxyFromEnv returns the web proxy named by HTTP_PROXY, or by
// http_proxy when HTTP_PROXY is unset or empty (the order Go's net/http
// uses); ok is false when neither is set. getenv is os.Getenv outside
// tests.
func ProxyFromEnv(getenv func(string) string) (w WebProxy, ok bool, err error) {
	for _, name := range []string{"HTTP_PROXY", "http_proxy"} {
		if v := getenv(name); v != "" {
			w, err = ParseProxyURL(v)
			if err != nil {
				return WebProxy{}, true, fmt.Errorf("%s: %w", name, err)
			}
			return w, true, nil
		}
	}
	return WebProxy{}, false, nil
}
