package connect

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Request is the CONNECT request sent to a web proxy: which target to
// tunnel to, and the optional User-Agent and Basic credentials.
type Request struct {
	// Host and Port name the target behind the proxy.
	Host string
	Port int
	// Agent, when not empty, is sent as User-Agent (proxy_agent).
	Agent string
	// User, when not empty, is sent with Pass as Proxy-Authorization Basic.
	User, Pass string
}

// Target returns host:port as CONNECT wants it, with an IPv6 host in
// brackets (RFC 9112 §3.2.3, authority-form).
func (r Request) Target() string {
	host := strings.TrimSuffix(strings.TrimPrefix(r.Host, "["), "]")
	return net.JoinHostPort(host, strconv.Itoa(r.Port))
}

// Validate refuses what would corrupt the request: empty host, a port out
// of range, line breaks or NUL in any field (header injection), and a colon
// in the user name, which Basic authentication cannot carry (RFC 7617).
func (r Request) Validate() error {
	if r.Host == "" {
		return errors.New("host parameter is required")
	}
	if r.Port < 1 || r.Port > 65535 {
		return fmt.Errorf("port %d out of range 1-65535", r.Port)
	}
	for _, f := range []struct{ key, val string }{
		{"host", r.Host}, {"proxy_agent", r.Agent}, {"proxy_user", r.User}, {"proxy_pass", r.Pass},
	} {
		if strings.ContainsAny(f.val, "\r\n\x00") {
			return fmt.Errorf("%s contains a line break or NUL", f.key)
		}
	}
	if strings.ContainsAny(r.Host, " \t/@") {
		return fmt.Errorf("host %q is not a host name or address", r.Host)
	}
	if strings.Contains(r.User, ":") {
		return errors.New("proxy_user cannot contain a colon (Basic authentication)")
	}
	return nil
}

// AppendTo appends the request bytes to b and returns the extended slice.
// The request is not validated here: call Validate once at configuration.
func (r Request) AppendTo(b []byte) []byte {
	target := r.Target()
	b = append(b, "CONNECT "...)
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, target...)
	b = append(b, "\r\n"...)
	if r.Agent != "" {
		b = append(b, "User-Agent: "...)
		b = append(b, r.Agent...)
		b = append(b, "\r\n"...)
	}
	if r.User != "" {
		b = append(b, "Proxy-Authorization: Basic "...)
		b = base64.StdEncoding.AppendEncode(b, []byte(r.User+":"+r.Pass))
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}
