package httptunnel_test

import (
	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/httptunnel"
	"github.com/nproxy/nproxy/connectors/tcp"
)

// Local port 2222 reaches sshd behind gw.example.org through a web proxy
// that forwards ordinary requests only: one nproxy on each side, many
// connections over one mux session.
func Example() {
	// On the client's side.
	nproxy.New(&tcp.In{Port: 2222}, &httptunnel.Out{
		Host: "gw.example.org", Port: 8888,
		ProxyHost: "proxy.example.com", ProxyPort: 3128,
		Options: httptunnel.Options{Mux: true, Key: "s3cret"},
	}).Register()
	// On gw.example.org.
	nproxy.New(&httptunnel.In{Host: "*", Port: 8888, Options: httptunnel.Options{Mux: true, Key: "s3cret"}},
		&tcp.Out{Host: "localhost", Port: 22}).Register()
	// nproxy.Mainloop(0)
}
