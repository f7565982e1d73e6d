package proxyproto_test

import (
	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/proxyproto"
	"github.com/nproxy/nproxy/connectors/tcp"
)

// Behind haproxy (send-proxy-v2): the client address comes from the header,
// and goes on to the backend in a v1 header.
func ExampleAccept() {
	in := &tcp.In{Port: 8443, Accept: proxyproto.Accept{ProxyProtocol: "v2", ProxyProtocolFrom: []string{"127.0.0.1/32"}}}
	out := &tcp.Out{Host: "localhost", Port: 8080, Send: proxyproto.Send{SendProxy: "v1"}}
	nproxy.New(in, out).Register()
}
