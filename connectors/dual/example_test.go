package dual_test

import (
	"regexp"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors/dual"
	"github.com/nproxy/nproxy/connectors/dummy"
	"github.com/nproxy/nproxy/connectors/tcp"
)

// Port 443 shared by SSH and HTTPS, with probes: OpenSSH's client (which
// speaks first) goes to sshd at once, TLS for *.internal.example to another
// server, other TLS and any other talking client to the web server, and a
// silent client to sshd after half a second.
func ExampleIn() {
	ssh := &tcp.Out{Host: "localhost", Port: 22}
	web := &tcp.Out{Host: "localhost", Port: 8443}
	p := nproxy.New(&dual.In{
		Host:        "*",
		Port:        443,
		Timeout:     500 * time.Millisecond,
		ServerFirst: ssh,
		ClientFirst: web,
		Routes: []dual.Route{
			{Probe: dual.SSH{}, Out: ssh},
			{Probe: dual.TLS{SNI: []string{"*.internal.example"}}, Out: &tcp.Out{Host: "10.0.0.2", Port: 443}},
			{Probe: dual.Regex{RE: regexp.MustCompile(`^\x00\x00\x00`), Min: 3}, Out: &tcp.Out{Host: "localhost", Port: 1194}},
		},
	}, dummy.Connector{})
	p.Register()
	if err := nproxy.Mainloop(0); err != nil { // serves until a signal
		panic(err)
	}
}
