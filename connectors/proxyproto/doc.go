// Package proxyproto is the PROXY protocol (haproxy's, v1 and v2) as an nproxy
// preamble: any stream in connector accepts a header by embedding Accept, and
// any out connector sends one by embedding Send.
//
//	in := &tcp.In{Port: 8080, Accept: proxyproto.Accept{
//		ProxyProtocol: "v2", ProxyProtocolFrom: []string{"127.0.0.1/32"}}}
//	out := &tcp.Out{Host: "localhost", Port: 9000, Send: proxyproto.Send{SendProxy: "v1"}}
//	p := nproxy.New(in, out)
//
// On the command line: --in type=tcp,port=8080,proxy_protocol=v2,proxy_protocol_from=127.0.0.1/32
// and --out type=tcp,host=localhost,port=9000,send_proxy=v1.
//
// The header is read on the loop, with a size bound and a deadline of its
// own, before the connector's own work (a TLS handshake, dual's probes); the
// client address it carries replaces the socket's peer address
// (loop.Socket.SetRemoteAddr) for logs, hooks and send_proxy downstream.
// go-proxyproto's parser and formatter are used on the bytes the loop framed:
// its net.Listener wrapper reads the header with blocking reads from a
// goroutine per connection, which a reactor cannot host. docs/proxy-protocol.md
// is the spec.
package proxyproto
