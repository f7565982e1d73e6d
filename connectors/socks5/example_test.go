package socks5_test

import (
	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/access"
	"github.com/nproxy/nproxy/connectors/socks5"
	"github.com/nproxy/nproxy/connectors/tcp"
)

// A SOCKS5 server with one user, allowed to reach web ports only; the tcp
// out without host takes each client where it asked.
func ExampleIn() {
	p := nproxy.New(&socks5.In{Port: 1080, Control: access.Control{
		Users: map[string]any{"alice": "s3cret"}, Allow: []string{"*:80", "*:443"}}}, &tcp.Out{})
	p.Register()
}

// Port 2222 reaches an SSH server through an upstream SOCKS5 server.
func ExampleOut() {
	p := nproxy.New(&tcp.In{Port: 2222}, &socks5.Out{Host: "ssh.example.org", Port: 22, ProxyHost: "socks.lan"})
	p.Register()
}
