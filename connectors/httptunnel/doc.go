// Package httptunnel is a GNU httptunnel 3.3 compatible connector: the out
// side is nproxy as htc, the in side nproxy as hts. One TCP connection
// travels in two HTTP requests, a POST whose body carries the client's data
// and a GET whose response carries the server's, so that it passes web
// proxies that forward ordinary requests only (docs/httptunnel.md).
//
//	// client side: local port 2222 to the hts on example.org:8888
//	nproxy.New(&tcp.In{Port: 2222}, &httptunnel.Out{Host: "example.org", Port: 8888})
//	// server side: the tunnel's end, forwarded to sshd
//	nproxy.New(&httptunnel.In{Host: "*", Port: 8888}, &tcp.Out{Host: "localhost", Port: 22})
//
// Its type name is "httptunnel": --out type=httptunnel,host=example.org,port=8888.
//
// A tunnel is a loop.Transport: the relay reads and writes payload on a
// socket made of an eventfd, and the tunnel's HTTP connections, which come
// and go as bodies are used up, are loop sockets of its own.
package httptunnel

import (
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/ssl"
)

func init() {
	connectors.Register("httptunnel", func(side connectors.Side) any {
		// SSL_verify_mode's default, as the ssl connector's: the server
		// is verified, the client is not.
		if side == connectors.SideIn {
			return &In{TLS: TLS{Params: ssl.Params{VerifyMode: -1}}}
		}
		return &Out{TLS: TLS{Params: ssl.Params{VerifyMode: -1}}}
	})
}
