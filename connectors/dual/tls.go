package dual

import "slices"

// TLS matches a client whose first bytes are a complete, well-formed TLS
// ClientHello (possibly spread over several handshake records). When SNI is
// set, the server name the client asks for must match one of its patterns,
// where '*' stands for any run of characters ("*.example.com"); a hello
// without a server name then does not match. When ALPN is set, the client
// must offer one of those protocols.
type TLS struct {
	SNI  []string `param:"sni"`
	ALPN []string `param:"alpn"`
}

// Check implements Probe.
func (t TLS) Check(b []byte) Verdict {
	h, v := parseClientHello(b)
	if v != Match {
		return v
	}
	if len(t.SNI) > 0 && (h.sni == "" || !anyGlob(t.SNI, h.sni)) {
		return NoMatch
	}
	if len(t.ALPN) > 0 && !slices.ContainsFunc(h.alpn, func(p string) bool { return slices.Contains(t.ALPN, p) }) {
		return NoMatch
	}
	return Match
}

// clientHello holds what the probes route on.
type clientHello struct {
	sni  string
	alpn []string
}

// TLS constants from RFC 8446.
const (
	recordHandshake   = 22
	handshakeClient   = 1
	maxRecordLen      = 1 << 14
	extServerName     = 0
	extALPN           = 16
	serverNameHost    = 0
	recordHeaderLen   = 5
	handshakeHdrLen   = 4
	maxSessionIDLen   = 32
	clientRandomLen   = 32
	protocolVersionSz = 2
)

// parseClientHello reads the ClientHello at the start of b. It answers
// NeedMore while b is a plausible prefix, NoMatch as soon as a byte rules
// TLS out, and Match with the hello once it is complete and well formed.
func parseClientHello(b []byte) (clientHello, Verdict) {
	msg, v := handshakeMessage(b)
	if v != Match {
		return clientHello{}, v
	}
	return parseHelloBody(msg)
}

// handshakeMessage gathers the first handshake message from the records at
// the start of b, checking each record header as soon as it is visible.
func handshakeMessage(b []byte) ([]byte, Verdict) {
	var msg []byte
	want := -1 // total handshake bytes, known once the 4-byte header is in
	for {
		if v := recordHeaderVerdict(b); v != Match {
			return nil, v
		}
		n := int(b[3])<<8 | int(b[4])
		if len(b) < recordHeaderLen+n {
			return nil, NeedMore
		}
		// A hello in one record, the usual case, is read in place; the
		// capped capacity makes a second record's append copy, not clobber b.
		frag := b[recordHeaderLen : recordHeaderLen+n : recordHeaderLen+n]
		if msg == nil {
			msg = frag
		} else {
			msg = append(msg, frag...)
		}
		b = b[recordHeaderLen+n:]
		if want < 0 && len(msg) >= 1 && msg[0] != handshakeClient {
			return nil, NoMatch
		}
		if want < 0 && len(msg) >= handshakeHdrLen {
			want = handshakeHdrLen + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
		}
		if want >= 0 && len(msg) >= want {
			// What follows the hello in its record is the next message's
			// business, as crypto/tls sees it too.
			return msg[handshakeHdrLen:want], Match
		}
	}
}

// recordHeaderVerdict checks the visible part of a handshake record header.
func recordHeaderVerdict(b []byte) Verdict {
	if len(b) >= 1 && b[0] != recordHandshake {
		return NoMatch
	}
	if len(b) >= 2 && b[1] != 3 { // any minor version, as crypto/tls allows
		return NoMatch
	}
	if len(b) < recordHeaderLen {
		return NeedMore
	}
	if n := int(b[3])<<8 | int(b[4]); n == 0 || n > maxRecordLen {
		return NoMatch
	}
	return Match
}

// parseHelloBody walks a ClientHello body (RFC 8446 section 4.1.2).
func parseHelloBody(body []byte) (clientHello, Verdict) {
	r := reader(body)
	var h clientHello
	version, ok := r.bytes(protocolVersionSz)
	if !ok || version[0] != 3 {
		return h, NoMatch
	}
	if _, ok := r.bytes(clientRandomLen); !ok {
		return h, NoMatch
	}
	if sid, ok := r.vec8(); !ok || len(sid) > maxSessionIDLen {
		return h, NoMatch
	}
	if suites, ok := r.vec16(); !ok || len(suites) == 0 || len(suites)%2 != 0 {
		return h, NoMatch
	}
	if comp, ok := r.vec8(); !ok || len(comp) == 0 {
		return h, NoMatch
	}
	if len(r) == 0 {
		return h, Match // TLS 1.0-1.2 may omit extensions altogether
	}
	exts, ok := r.vec16()
	if !ok || len(r) != 0 {
		return h, NoMatch
	}
	if !h.readExtensions(exts) {
		return h, NoMatch
	}
	return h, Match
}

// readExtensions fills h from the extensions it routes on and checks that
// every extension is framed correctly.
func (h *clientHello) readExtensions(r reader) bool {
	for len(r) > 0 {
		typ, ok1 := r.uint16()
		data, ok2 := r.vec16()
		if !ok1 || !ok2 {
			return false
		}
		var ok bool
		switch typ {
		case extServerName:
			h.sni, ok = serverName(data)
		case extALPN:
			h.alpn, ok = protocols(data)
		default:
			ok = true
		}
		if !ok {
			return false
		}
	}
	return true
}

// serverName returns the host_name entry of a server_name extension.
func serverName(data reader) (string, bool) {
	list, ok := data.vec16()
	if !ok || len(data) != 0 || len(list) == 0 {
		return "", false
	}
	name := ""
	for len(list) > 0 {
		typ, ok1 := list.bytes(1)
		entry, ok2 := list.vec16()
		if !ok1 || !ok2 || len(entry) == 0 {
			return "", false
		}
		if typ[0] == serverNameHost && name == "" {
			name = string(entry)
		}
	}
	return name, true
}

// protocols returns the protocol names of an ALPN extension.
func protocols(data reader) ([]string, bool) {
	list, ok := data.vec16()
	if !ok || len(data) != 0 || len(list) == 0 {
		return nil, false
	}
	var names []string
	for len(list) > 0 {
		p, ok := list.vec8()
		if !ok || len(p) == 0 {
			return nil, false
		}
		names = append(names, string(p))
	}
	return names, true
}

// reader consumes big-endian TLS fields, checking every length against what is left.
type reader []byte

func (r *reader) bytes(n int) ([]byte, bool) {
	if n > len(*r) {
		return nil, false
	}
	b := (*r)[:n]
	*r = (*r)[n:]
	return b, true
}

func (r *reader) uint16() (int, bool) {
	b, ok := r.bytes(2)
	if !ok {
		return 0, false
	}
	return int(b[0])<<8 | int(b[1]), true
}

func (r *reader) vec8() (reader, bool) {
	n, ok := r.bytes(1)
	if !ok {
		return nil, false
	}
	return r.bytes(int(n[0]))
}

func (r *reader) vec16() (reader, bool) {
	n, ok := r.uint16()
	if !ok {
		return nil, false
	}
	return r.bytes(n)
}
