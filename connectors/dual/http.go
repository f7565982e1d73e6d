package dual

import (
	"bytes"
	"strings"
)

// HTTP matches a client whose first bytes are an HTTP/1.x request line
// ("GET /path HTTP/1.1"). When Host is set, the request's Host header,
// without its port, must also match one of those patterns ('*' stands for
// any run of characters), and a request without a Host header does not match.
type HTTP struct {
	Host []string `param:"host"`
}

// maxMethodLen is longer than any registered method (BASELINE-CONTROL):
// a long run of capitals is something else.
const maxMethodLen = 24

// Check implements Probe.
func (h HTTP) Check(b []byte) Verdict {
	rest, v := requestLine(b)
	if v != Match || len(h.Host) == 0 {
		return v
	}
	host, v := hostHeader(rest)
	if v != Match {
		return v
	}
	if anyGlob(h.Host, hostname(host)) {
		return Match
	}
	return NoMatch
}

// requestLine checks "METHOD SP target SP HTTP/d.d CRLF" and returns what follows.
func requestLine(b []byte) ([]byte, Verdict) {
	i := 0
	for i < len(b) && isMethodChar(b[i]) {
		i++
	}
	switch {
	case i > maxMethodLen:
		return nil, NoMatch
	case i == len(b):
		return nil, NeedMore
	case i == 0 || b[i] != ' ':
		return nil, NoMatch
	}
	i++
	start := i
	for i < len(b) && b[i] > ' ' && b[i] < 0x7f {
		i++
	}
	switch {
	case i == len(b):
		return nil, NeedMore
	case i == start || b[i] != ' ':
		return nil, NoMatch
	}
	rest := b[i+1:]
	const shape = "HTTP/9.9"
	for j := range len(shape) {
		if j == len(rest) {
			return nil, NeedMore
		}
		if c := rest[j]; shape[j] == '9' && !isDigit(c) || shape[j] != '9' && c != shape[j] {
			return nil, NoMatch
		}
	}
	return lineEnd(rest[len(shape):])
}

// lineEnd accepts CRLF or a bare LF at the start of b and returns what follows.
func lineEnd(b []byte) ([]byte, Verdict) {
	switch {
	case len(b) == 0:
		return nil, NeedMore
	case b[0] == '\n':
		return b[1:], Match
	case b[0] != '\r':
		return nil, NoMatch
	case len(b) == 1:
		return nil, NeedMore
	case b[1] == '\n':
		return b[2:], Match
	}
	return nil, NoMatch
}

// hostHeader finds the first Host header among the header lines at the start of b.
func hostHeader(b []byte) (string, Verdict) {
	for {
		if len(b) == 0 {
			return "", NeedMore
		}
		if b[0] == '\r' || b[0] == '\n' {
			if _, v := lineEnd(b); v != Match {
				return "", v
			}
			return "", NoMatch // end of the headers, and no Host among them
		}
		name, value, rest, v := headerLine(b)
		if v != Match {
			return "", v
		}
		if strings.EqualFold(string(name), "host") {
			return string(bytes.Trim(value, " \t")), Match
		}
		b = rest
	}
}

// headerLine splits "name: value CRLF" at the start of b.
func headerLine(b []byte) (name, value, rest []byte, v Verdict) {
	i := 0
	for i < len(b) && isTokenChar(b[i]) {
		i++
	}
	switch {
	case i == len(b):
		return nil, nil, nil, NeedMore
	case i == 0 || b[i] != ':':
		return nil, nil, nil, NoMatch
	}
	name = b[:i]
	end := bytes.IndexAny(b[i+1:], "\r\n")
	if end < 0 {
		if bytes.IndexByte(b[i+1:], 0) >= 0 {
			return nil, nil, nil, NoMatch
		}
		return nil, nil, nil, NeedMore
	}
	value = b[i+1 : i+1+end]
	if bytes.IndexByte(value, 0) >= 0 {
		return nil, nil, nil, NoMatch
	}
	rest, v = lineEnd(b[i+1+end:])
	return name, value, rest, v
}

// hostname drops the port from a Host value ("[::1]:8080" → "::1").
func hostname(host string) string {
	if strings.HasPrefix(host, "[") {
		if end := strings.IndexByte(host, ']'); end > 0 {
			return host[1:end]
		}
		return host
	}
	name, _, _ := strings.Cut(host, ":")
	return name
}

func isMethodChar(c byte) bool { return 'A' <= c && c <= 'Z' || c == '-' || c == '_' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isTokenChar reports whether c may appear in a header name (RFC 9110 tchar).
func isTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
