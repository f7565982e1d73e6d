package proxyproto

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
	pp "github.com/pires/go-proxyproto"
	"golang.org/x/sys/unix"
)

// Send is the out side: embedded in an out connector, it makes the
// connector send a PROXY header to the server (when SendProxy is set)
// before any of the client's bytes. Its zero value sends none.
type Send struct {
	// SendProxy is the header version sent: "v1" or "v2"; empty sends none.
	SendProxy string `param:"send_proxy"`
}

// Validate checks the version. Connectors with a Validate of their own
// call it from theirs; for the others it is promoted.
func (p *Send) Validate() error {
	switch p.SendProxy {
	case "", "v1", "v2":
		return nil
	}
	return fmt.Errorf("send_proxy must be v1 or v2, not %q", p.SendProxy)
}

// TLSState is implemented by transports that know the client's TLS session
// (the ssl connector's): v2 headers then carry the SSL and authority TLVs.
type TLSState interface {
	ConnectionState() tls.ConnectionState
}

// Header returns the header that tells a server about client, or nil when
// none is to be sent.
func (p *Send) Header(client *loop.Socket) ([]byte, error) {
	var version byte
	switch p.SendProxy {
	case "":
		return nil, nil
	case "v1":
		version = 1
	case "v2":
		version = 2
	default:
		return nil, p.Validate()
	}
	h := pp.HeaderProxyFromAddrs(version, tcpAddr(client.RemoteAddr()), tcpAddr(client.LocalAddr()))
	if version == 2 {
		if err := h.SetTLVs(tlvs(client)); err != nil {
			return nil, err
		}
	}
	return h.Format()
}

// tcpAddr makes a *net.TCPAddr of a, or an untyped nil for an invalid one
// (a unix peer), so that the header says LOCAL / UNKNOWN.
func tcpAddr(a netip.AddrPort) net.Addr {
	if !a.IsValid() {
		return nil
	}
	return net.TCPAddrFromAddrPort(a)
}

// tlvs are the v2 TLVs nproxy knows about the client: whether it came over
// TLS, and the name it asked for (TLS SNI, or a SOCKS5/CONNECT host name).
func tlvs(client *loop.Socket) []pp.TLV {
	var list []pp.TLV
	authority := ""
	if host, _, ok := client.Destination(); ok {
		if _, err := netip.ParseAddr(host); err != nil {
			authority = host
		}
	}
	if t, ok := client.Transport().(TLSState); ok {
		cs := t.ConnectionState()
		if cs.ServerName != "" {
			authority = cs.ServerName
		}
		list = append(list, sslTLV(cs))
	}
	if authority != "" && len(authority) <= 255 {
		list = append(list, pp.TLV{Type: pp.PP2_TYPE_AUTHORITY, Value: []byte(authority)})
	}
	return list
}

// sslTLV is PP2_TYPE_SSL: client bits PP2_CLIENT_SSL (0x01), verify 0 (the
// client certificate, if any, was verified by the handshake), and the
// version as a sub-TLV.
func sslTLV(cs tls.ConnectionState) pp.TLV {
	version := tls.VersionName(cs.Version)
	v := []byte{0x01, 0, 0, 0, 0, byte(pp.PP2_SUBTYPE_SSL_VERSION), 0, byte(len(version))}
	return pp.TLV{Type: pp.PP2_TYPE_SSL, Value: append(v, version...)}
}

// WriteHeader writes the header for client to server, a socket just
// connected: its empty send buffer (at least 4 KiB, tcp_wmem's minimum)
// takes the header in one write(2), so a short write is an error, never
// something to finish later.
func (p *Send) WriteHeader(client, server *loop.Socket) error {
	h, err := p.Header(client)
	if err != nil || h == nil {
		return err
	}
	n, err := unix.Write(server.Fd(), h)
	if err == nil && n < len(h) {
		err = fmt.Errorf("short write (%d of %d bytes)", n, len(h))
	}
	if err != nil {
		return fmt.Errorf("send_proxy to %s: %w", server.Nick(), err)
	}
	return nil
}

// Wrap returns the handler to give an out connector's work: h itself when
// no header is sent, else one that writes the header to the server before
// telling h it is connected.
func (p *Send) Wrap(h connectors.Handler) connectors.Handler {
	if p.SendProxy == "" {
		return h
	}
	return sending{p, h}
}

type sending struct {
	p *Send
	connectors.Handler
}

// Connected writes the header, then lets the relay start.
func (s sending) Connected(l *loop.Loop, client, server *loop.Socket) {
	if client.Closed() {
		s.Handler.Connected(l, client, server) // the proxy closes server
		return
	}
	if err := s.p.WriteHeader(client, server); err != nil {
		l.Close(server)
		s.Failed(l, client, err)
		return
	}
	s.Handler.Connected(l, client, server)
}
