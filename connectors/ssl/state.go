package ssl

import "crypto/tls"

// ConnectionState describes the socket's TLS session once the handshake is
// done: send_proxy reads it (proxyproto.TLSState) for its v2 TLVs.
func (c *conn) ConnectionState() tls.ConnectionState { return c.e.ConnectionState() }
